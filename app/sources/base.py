"""The contract every source adapter fulfils, and typed field access that fails with clear codes."""

from __future__ import annotations

from typing import Any, Protocol

from app.model.events import MAX_TS_MS, Event, parse_time
from app.sources.errors import ErrorCode, NormalizeError


class SourceAdapter(Protocol):
    """Turns one decoded raw record of one format into canonical events.

    `name` is the source name written into each event (`falco`, `trivy`, ...); `family` is the
    raw topic family it is read from (`telemetry.<family>`). `matches` must be cheap and must
    not raise; `normalize` raises NormalizeError for anything it cannot read. `raw` is the
    record's original bytes, available for deterministic event ids.
    """

    name: str
    family: str

    def matches(self, doc: Any) -> bool: ...

    def normalize(self, doc: Any, raw: bytes) -> list[Event]: ...


_TYPE_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
}


def require(doc: Any, path: str, kind: type | tuple[type, ...] | None = None) -> Any:
    """Return the value at a dotted `path` in `doc`, or raise MISSING_FIELD / WRONG_TYPE.

    `kind` may be a type or a tuple of types; `int` never accepts `bool`.
    """
    value = doc
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if not isinstance(value, dict):
            raise NormalizeError(
                ErrorCode.WRONG_TYPE, f"'{'.'.join(walked[:-1]) or '$'}' must be an object"
            )
        if part not in value or value[part] is None:
            raise NormalizeError(ErrorCode.MISSING_FIELD, f"required field '{path}' is missing")
        value = value[part]
    if kind is not None and not _is_kind(value, kind):
        raise NormalizeError(ErrorCode.WRONG_TYPE, f"'{path}' must be {_describe(kind)}")
    return value


def optional(doc: Any, path: str, kind: type | tuple[type, ...] | None = None, default=None):
    """Like `require`, but a missing field (or a non-object on the way) gives `default`.

    A present field of the wrong type still raises WRONG_TYPE.
    """
    value = doc
    for part in path.split("."):
        if not isinstance(value, dict) or value.get(part) is None:
            return default
        value = value[part]
    if kind is not None and not _is_kind(value, kind):
        raise NormalizeError(ErrorCode.WRONG_TYPE, f"'{path}' must be {_describe(kind)}")
    return value


def require_time(doc: Any, path: str) -> int:
    """The timestamp at `path` as epoch milliseconds, or MISSING_FIELD / INVALID_VALUE."""
    value = require(doc, path)
    try:
        return parse_time(value)
    except ValueError as exc:
        raise NormalizeError(ErrorCode.INVALID_VALUE, f"'{path}': {exc}") from None


def require_object(doc: Any, what: str = "record") -> dict[str, Any]:
    """`doc` itself must be a JSON object."""
    if not isinstance(doc, dict):
        raise NormalizeError(ErrorCode.WRONG_TYPE, f"{what} must be a JSON object")
    return doc


def _is_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, kinds)


def _describe(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)


def finding_key(*parts: str) -> str:
    """A short stable finding identity: the first 16 hex digits of SHA-256 over `parts`.

    Parts are joined with the unit separator, so ("a", "bc") and ("ab", "c") differ. Pass only
    what identifies the finding (tool, artifact, location, rule or package, id): never severity,
    scores, fixed versions or line numbers (REFERENCE.md, "Stable finding keys").
    """
    import hashlib

    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def compact_value(value: Any, limit: int = 2048) -> Any:
    """`value` with every blob over `limit` bytes of JSON replaced by a short marker.

    Objects and lists over the limit are descended into, so their small members survive and
    only the big leaves (policy documents, user data, certificates, long lists' big items) go;
    a string over the limit becomes `"[<n> bytes dropped]"`. Keeps event attributes compact.
    """
    import orjson

    if isinstance(value, str):
        size = len(value.encode())
        return value if size <= limit else f"[{size} bytes dropped]"
    if not isinstance(value, dict | list):
        return value
    if len(orjson.dumps(value, default=str)) <= limit:
        return value
    if isinstance(value, dict):
        return {key: compact_value(item, limit) for key, item in value.items()}
    return [compact_value(item, limit) for item in value]


def check_time_range(ts_ms: int, path: str) -> int:
    """`ts_ms` if it lies between the epoch and year 9999, else INVALID_VALUE.

    `parse_time` accepts any size of number (e.g. `1e300`), which would later break
    `format_time` and `event_id`.
    """
    if not 0 <= ts_ms <= MAX_TS_MS:
        raise NormalizeError(ErrorCode.INVALID_VALUE, f"'{path}' is out of range: {ts_ms}")
    return ts_ms
