"""What the pure logic asks to emit: a record for a logical topic, and the dead-letter builder."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from app.events import event_id, format_time
from app.sources.errors import NormalizeError

#: Most original bytes a dead letter carries. Base64 grows them by a third, and the result must
#: fit Kafka's default 1 MB message limit; longer records are cut, flagged `raw_truncated`, and
#: identified by `raw_sha256` (the whole record stays at its offset in the source topic).
DEADLETTER_RAW_CAP = 512 * 1024


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


def dead_letter(origin: Origin, error: NormalizeError, raw: bytes) -> Output:
    """The `vigil.deadletter` record for a raw record that could not be normalized.

    Keeps the original bytes (base64, up to DEADLETTER_RAW_CAP) so the record can be replayed
    once fixed. `time` is the record's broker timestamp when known, so a replay writes the same
    dead letter.
    """
    time_ms = origin.timestamp_ms
    kept = raw[:DEADLETTER_RAW_CAP]
    value = {
        "id": event_id("deadletter", origin.topic, origin.partition, origin.offset, raw),
        "source_topic": origin.topic,
        "partition": origin.partition,
        "offset": origin.offset,
        "error_code": error.code.value,
        "message": error.message,
        "raw_b64": base64.b64encode(kept).decode("ascii"),
        "raw_bytes": len(raw),
        "raw_truncated": len(kept) < len(raw),
        "raw_sha256": hashlib.sha256(raw).hexdigest(),
        "time": format_time(time_ms) if time_ms is not None else None,
    }
    return Output("deadletter", f"{origin.topic}:{origin.partition}:{origin.offset}", value)
