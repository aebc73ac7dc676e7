"""The one front door from raw bytes to masked canonical events, shared by agents and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.events import Event
from app.masking import MaskingPolicy, mask_text, mask_value
from app.sources.base import SourceAdapter
from app.sources.decode import DecodeLimits, decode_record
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.registry import TEXT_FAMILIES, adapter_named, adapters_for


@dataclass(slots=True)
class Normalizer:
    """Decodes a raw record, picks the adapter, normalizes and masks.

    Every failure is a NormalizeError with an ErrorCode: an adapter bug becomes INTERNAL
    rather than an exception that could stop a worker.
    """

    limits: DecodeLimits = field(default_factory=DecodeLimits)
    masking: MaskingPolicy = field(default_factory=MaskingPolicy)

    def normalize(
        self, raw: bytes, family: str | None = None, source: str | None = None
    ) -> list[Event]:
        """Normalize one raw record read from `family`'s topic (or auto-detected).

        `source` forces one adapter by name (`falco`, `trivy`, ...).
        """
        candidates = self._candidates(family, source)
        allow_text = any(getattr(a, "accepts_text", False) for a in candidates) or (
            family in TEXT_FAMILIES
        )
        doc = decode_record(raw, self.limits, allow_text=allow_text)
        for adapter in candidates:
            if not _safe_matches(adapter, doc):
                continue
            try:
                events = adapter.normalize(doc, raw)
            except NormalizeError as exc:
                exc.message = mask_text(exc.message, self.masking)
                raise
            except RecursionError:
                raise NormalizeError(ErrorCode.TOO_DEEP, "record nests too deeply") from None
            except Exception as exc:  # an adapter bug must never stop the worker
                raise NormalizeError(
                    ErrorCode.INTERNAL, f"{adapter.name} adapter failed: {type(exc).__name__}"
                ) from None
            if self.masking.enabled:
                for event in events:
                    event.attributes = mask_value(event.attributes, self.masking)
                    event.entity = mask_text(event.entity, self.masking)
            return events
        names = ", ".join(a.name for a in candidates)
        where = f"the {family} topic" if family else "any known format"
        raise NormalizeError(
            ErrorCode.UNKNOWN_FORMAT, f"record matches no adapter for {where} (tried: {names})"
        )

    @staticmethod
    def _candidates(family: str | None, source: str | None) -> tuple[SourceAdapter, ...]:
        if source is not None:
            adapter = adapter_named(source)
            if adapter is None:
                raise NormalizeError(ErrorCode.UNKNOWN_FORMAT, f"unknown source {source!r}")
            return (adapter,)
        try:
            return adapters_for(family)
        except KeyError:
            raise NormalizeError(
                ErrorCode.UNKNOWN_FORMAT, f"no adapters for topic family {family!r}"
            ) from None


def _safe_matches(adapter: SourceAdapter, doc: object) -> bool:
    try:
        return bool(adapter.matches(doc))
    except Exception:
        return False


def detect_family(raw: bytes, limits: DecodeLimits | None = None) -> str | None:
    """The raw topic family whose adapters recognise this record, or None."""
    from app.sources.registry import FAMILIES

    limits = limits or DecodeLimits()
    for allow_text in (False, True):
        try:
            doc = decode_record(raw, limits, allow_text=allow_text)
        except NormalizeError:
            continue
        for family, adapters in FAMILIES.items():
            if allow_text and not any(getattr(a, "accepts_text", False) for a in adapters):
                continue
            if any(_safe_matches(adapter, doc) for adapter in adapters):
                return family
    return None
