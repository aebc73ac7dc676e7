"""The one front door from raw bytes to masked canonical events, shared by agents and the CLI."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.masking import MaskingPolicy, mask_text, mask_value
from app.model.events import Event, format_time
from app.sources.base import SourceAdapter
from app.sources.decode import DecodeLimits, decode_record
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.registry import TEXT_FAMILIES, adapter_named, adapters_for

#: Default of `VIGIL_MAX_FUTURE_SKEW_MS`: how far ahead of the wall clock an event may be.
MAX_FUTURE_SKEW_MS = 3_600_000

#: C0 and C1 control characters and DEL: each becomes U+FFFD in an entity key.
_CONTROL_CHARS = {c: "\ufffd" for c in (*range(0x20), *range(0x7F, 0xA0))}


def wall_clock_ms() -> int:
    """Now, as epoch milliseconds."""
    return int(time.time() * 1000)


@dataclass(slots=True)
class Normalized:
    """What one raw record became: the events kept and the future-dated events refused, each
    with its index among the events the adapter made from the record. Refused events become
    dead letters of their own; the rest of the record goes on."""

    accepted: list[tuple[int, Event]]
    rejected: list[tuple[int, NormalizeError]]

    @property
    def events(self) -> list[Event]:
        """The events kept, in record order."""
        return [event for _, event in self.accepted]


@dataclass(slots=True)
class Normalizer:
    """Decodes a raw record, picks the adapter, normalizes, refuses future event times, masks.

    Every failure is a NormalizeError with an ErrorCode: an adapter bug becomes INTERNAL
    rather than an exception that could stop a worker. `max_future_skew_ms`: an event time
    further ahead of `clock_ms()` is refused (FUTURE_TIMESTAMP) before it can reach a
    watermark; 0 turns the check off.
    """

    limits: DecodeLimits = field(default_factory=DecodeLimits)
    masking: MaskingPolicy = field(default_factory=MaskingPolicy)
    max_future_skew_ms: int = MAX_FUTURE_SKEW_MS
    clock_ms: Callable[[], int] = wall_clock_ms

    def normalize(
        self, raw: bytes, family: str | None = None, source: str | None = None
    ) -> list[Event]:
        """Normalize one raw record read from `family`'s topic (or auto-detected).

        `source` forces one adapter by name (`falco`, `trivy`, ...). Strict: a record with
        any future-dated event raises; `normalize_record` keeps the rest of such a record.
        """
        normalized = self.normalize_record(raw, family, source)
        if normalized.rejected:
            raise normalized.rejected[0][1]
        return normalized.events

    def normalize_record(
        self, raw: bytes, family: str | None = None, source: str | None = None
    ) -> Normalized:
        """Normalize one raw record; future-dated events are refused one by one.

        Raises NormalizeError when the record as a whole cannot be read, or when every event
        it holds is future-dated (then the record is one dead letter, as any other failure).
        """
        events = self._adapt(raw, family, source)
        normalized = self._refuse_future(events)
        for _, event in normalized.accepted:
            event.entity = event.entity.translate(_CONTROL_CHARS)
            if self.masking.enabled:
                event.attributes = mask_value(event.attributes, self.masking)
                event.entity = mask_text(event.entity, self.masking)
        return normalized

    def _adapt(self, raw: bytes, family: str | None, source: str | None) -> list[Event]:
        candidates = self._candidates(family, source)
        allow_text = any(getattr(a, "accepts_text", False) for a in candidates) or (
            family in TEXT_FAMILIES
        )
        doc = decode_record(raw, self.limits, allow_text=allow_text)
        for adapter in candidates:
            if not _safe_matches(adapter, doc):
                continue
            try:
                return adapter.normalize(doc, raw)
            except NormalizeError as exc:
                exc.message = mask_text(exc.message, self.masking)
                raise
            except RecursionError:
                raise NormalizeError(ErrorCode.TOO_DEEP, "record nests too deeply") from None
            except Exception as exc:  # an adapter bug must never stop the worker
                raise NormalizeError(
                    ErrorCode.INTERNAL, f"{adapter.name} adapter failed: {type(exc).__name__}"
                ) from None
        names = ", ".join(a.name for a in candidates)
        where = f"the {family} topic" if family else "any known format"
        raise NormalizeError(
            ErrorCode.UNKNOWN_FORMAT, f"record matches no adapter for {where} (tried: {names})"
        )

    def _refuse_future(self, events: list[Event]) -> Normalized:
        """Split events into those within the skew of the wall clock and those beyond it."""
        if not self.max_future_skew_ms or not events:
            return Normalized(list(enumerate(events)), [])
        limit_ms = self.clock_ms() + self.max_future_skew_ms
        accepted, ahead = [], []
        for index, event in enumerate(events):
            (ahead if event.ts_ms > limit_ms else accepted).append((index, event))
        if not ahead:
            return Normalized(accepted, [])
        reason = (
            f"is more than {self.max_future_skew_ms} ms ahead of the wall clock (limit "
            f"{format_time(limit_ms)}, VIGIL_MAX_FUTURE_SKEW_MS)"
        )
        if not accepted:
            newest = max(event.ts_ms for _, event in ahead)
            every = f"all {len(events)} events are future-dated; the newest, " if ahead[1:] else ""
            raise NormalizeError(
                ErrorCode.FUTURE_TIMESTAMP, f"{every}event time {format_time(newest)} {reason}"
            )
        rejected = [
            (
                index,
                NormalizeError(
                    ErrorCode.FUTURE_TIMESTAMP,
                    f"event {index} of {len(events)}: event time {format_time(event.ts_ms)} "
                    f"{reason}",
                ),
            )
            for index, event in ahead
        ]
        return Normalized(accepted, rejected)

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
