"""The dead-letter record: why a record could not be read, with its original bytes (masked)."""

from __future__ import annotations

import base64
import hashlib

from app.masking import MaskingPolicy, mask_raw, mask_text
from app.model.events import event_id, format_time
from app.model.outputs import Origin, Output
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import OVERSIZE_HEAD_BYTES, OversizeRecord

#: Most original bytes a dead letter carries. Base64 grows them by a third, and the result must
#: fit Kafka's default 1 MB message limit; longer records are cut, flagged `raw_truncated`, and
#: identified by `raw_sha256` (the whole record stays at its offset in the source topic).
DEADLETTER_RAW_CAP = OVERSIZE_HEAD_BYTES
#: Bytes past the cap masked together with the kept ones, so that a secret the cap cuts is
#: still recognised whole (and masked) rather than kept in part.
_MASK_OVERLAP = 64 * 1024
_MASK_ALL = MaskingPolicy()


def dead_letter(
    origin: Origin,
    error: NormalizeError,
    raw: bytes | OversizeRecord,
    event_index: int | None = None,
    *,
    masking: MaskingPolicy = _MASK_ALL,
) -> Output:
    """The `vigil.deadletter` record for a raw record that could not be normalized.

    Keeps the original bytes (base64, up to DEADLETTER_RAW_CAP) so the record can be replayed
    once fixed, masked with the same rules as events (app/masking/ `mask_raw`; bytes with
    nothing to mask are kept exactly, `raw_masked` says which); `raw_bytes` and `raw_sha256`
    describe the original, which stays clear only at its offset in the source topic. `time` is
    the record's broker timestamp when known, so a replay writes the same dead letter.
    `event_index`: the one event of a multi-event record refused on its own (a future event
    time); the rest of the record went on. A record over the size limit is
    identified by its SHA-256: a file reader never holds it whole (app/sources/files.py), and
    held or not it gets the same dead letter.
    """
    time_ms = origin.timestamp_ms
    if isinstance(raw, OversizeRecord):
        head, size, sha256 = raw.head, raw.size, raw.sha256
    else:
        head, size, sha256 = raw, len(raw), hashlib.sha256(raw).hexdigest()
    window = head[: DEADLETTER_RAW_CAP + _MASK_OVERLAP]
    masked = mask_raw(window, masking)
    kept = masked[:DEADLETTER_RAW_CAP]
    identity = f"sha256:{sha256}" if error.code is ErrorCode.TOO_LARGE else raw
    parts = (origin.topic, origin.partition, origin.offset, identity)
    value = {
        "id": event_id("deadletter", *parts, *(() if event_index is None else (event_index,))),
        "source_topic": origin.topic,
        "partition": origin.partition,
        "offset": origin.offset,
        "event_index": event_index,
        "error_code": error.code.value,
        "message": mask_text(error.message, masking),
        "raw_b64": base64.b64encode(kept).decode("ascii"),
        "raw_bytes": size,
        "raw_truncated": len(kept) < len(masked) or len(window) < size,
        "raw_masked": masked is not window,
        "raw_sha256": sha256,
        "time": format_time(time_ms) if time_ms is not None else None,
    }
    return Output("deadletter", f"{origin.topic}:{origin.partition}:{origin.offset}", value)
