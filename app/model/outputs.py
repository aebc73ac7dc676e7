"""What a stage asks to emit: a record for a logical topic; where a raw record came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Output:
    """One record to emit: logical topic (`events`, `deadletter`, ...), key, JSON value."""

    topic: str
    key: str | None
    value: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a raw record came from: Kafka coordinates, or a file and record index offline."""

    topic: str
    partition: int | None
    offset: int | None
    timestamp_ms: int | None = None
