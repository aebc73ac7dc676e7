"""Split telemetry files into raw records, the way they would arrive as Kafka messages.

Memory stays bounded by the record size limit, whatever the file's size: a file is read whole
only when it is within the limit (it may be one JSON document); anything larger is read a line
at a time, in pieces, and a line over the limit is hashed and dropped as it is read.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from app.sources.decode import DecodeLimits

#: The first bytes kept of a record over the size limit: as much as a dead letter keeps of any
#: record (app/dead_letters.py's DEADLETTER_RAW_CAP is this).
OVERSIZE_HEAD_BYTES = 512 * 1024
#: Most bytes read at once from a file.
PIECE_BYTES = 64 * 1024

_DEFAULT_MAX_BYTES = DecodeLimits().max_bytes


@dataclass(frozen=True, slots=True)
class OversizeRecord:
    """A record over the size limit, never held whole: its first bytes, size and SHA-256."""

    head: bytes
    size: int
    sha256: str


def file_records(
    path: str | Path, max_bytes: int = _DEFAULT_MAX_BYTES
) -> Iterator[tuple[int, bytes | OversizeRecord]]:
    """Yield `(record_index, raw_bytes)` for each record in a file.

    A file holding one JSON document (a Trivy report, a webhook body, a CloudTrail log file)
    is one record. Anything else is read as lines: JSON lines, or text lines such as the
    Prometheus exposition format; blank lines are skipped and the index is the line number.
    A file over `max_bytes` cannot be one record and is read as lines, except a pretty-printed
    document (its first line is a lone `{` or `[`), which is one OversizeRecord. A line over
    `max_bytes` is an OversizeRecord too: each becomes one `too_large` error, as on a topic.
    """
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size <= max_bytes:
            data = handle.read(max_bytes + 1)
            if _is_one_document(data):
                yield 0, data.strip()
                return
            handle.seek(0)
        elif _opens_pretty_document(handle):
            record = _Record(max_bytes)
            for piece in iter(lambda: handle.read(PIECE_BYTES), b""):
                record.add(piece)
            if (whole := record.end()) is not None:
                yield 0, whole
            return
        yield from _line_records(handle, max_bytes)


def _is_one_document(data: bytes) -> bool:
    stripped = data.strip()
    if stripped[:1] not in (b"{", b"["):
        return False
    try:
        orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return False
    return True


def _opens_pretty_document(handle: BinaryIO) -> bool:
    """Whether the first non-blank line is a lone `{` or `[` (rewinds the file)."""
    try:
        for line in iter(lambda: handle.readline(PIECE_BYTES), b""):
            if line.strip():
                return line.strip() in (b"{", b"[")
        return False
    finally:
        handle.seek(0)


def _line_records(handle: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes | OversizeRecord]]:
    index = 0
    record = _Record(max_bytes)
    for piece in iter(lambda: handle.readline(PIECE_BYTES), b""):
        record.add(piece)
        if piece.endswith(b"\n"):
            if (raw := record.end()) is not None:
                yield index, raw
            index += 1
            record = _Record(max_bytes)
    if (raw := record.end()) is not None:
        yield index, raw


class _Record:
    """One record read in pieces, stripped of surrounding whitespace: held while within
    `max_bytes`; past it, only its first bytes are kept and the rest is hashed and dropped."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.keep = max(max_bytes, OVERSIZE_HEAD_BYTES)
        #: the first `keep` bytes read since the first non-whitespace byte
        self.head = bytearray()
        #: bytes read since the first non-whitespace byte / up to the last non-whitespace byte
        self.read = 0
        self.length = 0
        #: once past the limit: SHA-256 of the first `length` bytes, and of the first `read`
        self.digest: hashlib._Hash | None = None
        self.tail: hashlib._Hash | None = None

    def add(self, piece: bytes) -> None:
        """The next bytes of the record."""
        if not self.read:
            piece = piece.lstrip()
            if not piece:
                return
        if len(self.head) < self.keep:
            self.head += piece[: self.keep - len(self.head)]
        content = len(piece.rstrip())
        if self.tail is None and self.read + len(piece) > self.max_bytes:
            self.digest = hashlib.sha256(self.head[: self.length])
            self.tail = self.digest.copy()
            self.tail.update(self.head[self.length : self.read])
        if self.tail is not None:
            if content:
                self.tail.update(piece[:content])
                self.digest = self.tail.copy()
            self.tail.update(piece[content:])
        if content:
            self.length = self.read + content
        self.read += len(piece)

    def end(self) -> bytes | OversizeRecord | None:
        """The record read (None when it was blank)."""
        if self.length <= self.max_bytes:
            return bytes(self.head[: self.length]) if self.length else None
        assert self.digest is not None
        return OversizeRecord(
            bytes(self.head[: min(self.length, OVERSIZE_HEAD_BYTES)]),
            self.length,
            self.digest.hexdigest(),
        )
