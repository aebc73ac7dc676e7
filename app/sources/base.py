"""The contract every source adapter fulfils, and typed field access that fails with clear codes."""

from __future__ import annotations

from typing import Any, Protocol

from app.events import Event, parse_time
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
