"""What each GitHub payload parser returns, and the time candidates they look up."""

from __future__ import annotations

from typing import Any, NamedTuple


class Parsed(NamedTuple):
    """One delivery, parsed: the event's type, time (and the field it came from), severity,
    the parts of its id and its kind-specific attributes."""

    type: str
    ts_ms: int
    time_field: str
    severity: str
    ids: tuple[Any, ...]
    attributes: dict[str, Any]


def field_times(obj: dict[str, Any], prefix: str, *fields: str) -> list[tuple[str, Any]]:
    """`(prefix.field, value)` candidates for `first_time`, in the order given."""
    return [(f"{prefix}.{name}", obj.get(name)) for name in fields]
