"""Split telemetry files into raw records, the way they would arrive as Kafka messages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson


def file_records(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """Yield `(record_index, raw_bytes)` for each record in a file.

    A file holding one JSON document (a Trivy report, a webhook body, a CloudTrail log file)
    is one record. Anything else is read as lines: JSON lines, or text lines such as the
    Prometheus exposition format; blank lines are skipped.
    """
    data = Path(path).read_bytes()
    stripped = data.strip()
    if stripped[:1] in (b"{", b"["):
        try:
            orjson.loads(stripped)
        except orjson.JSONDecodeError:
            pass
        else:
            yield 0, stripped
            return
    for index, line in enumerate(data.splitlines()):
        if line.strip():
            yield index, line.strip()
