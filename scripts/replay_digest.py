"""Digests of what the offline pipeline emits, to show a refactoring changed no output.

`python scripts/replay_digest.py > before.json`, change the code, run it again and `diff` the
two files. One SHA-256 per shared fixture file (the bytes `vigil replay --offline FILE`
prints); one per output topic of the bench stream and of the chaos stream (the generator's
records with the Kafka coordinates a worker sees, through `scripts/chaos_check.py`'s spec);
one for the generator's own records. `VIGIL_SHARED_DIR` points at the shared fixtures
(default ../shared).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaos_check import expected_outputs, raw_plan  # noqa: E402

from app.generator.stream import TelemetryGenerator  # noqa: E402
from app.replay import offline_replay  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.topics import TopicCatalog  # noqa: E402

#: a fixed start, so the generated streams do not depend on today's date
START_MS = 1_767_225_600_000


#: The generated streams digested: name -> (seed, share of malformed records, records).
STREAMS = {"bench": (11, 0.002, 20_000), "chaos": (7, 0.005, 20_000)}


def stream_records(name: str) -> list:
    """The generator's records of one of `STREAMS`, 20 a second from `START_MS`."""
    seed, bad, count = STREAMS[name]
    return list(TelemetryGenerator(seed=seed, bad_ratio=bad).records(START_MS, 20.0, count))


def _digest(lines) -> str:
    h = hashlib.sha256()
    count = 0
    for line in lines:
        h.update(orjson.dumps(line, option=orjson.OPT_SORT_KEYS) + b"\n")
        count += 1
    return f"{h.hexdigest()[:32]} ({count} records)"


def main() -> int:
    settings = Settings()
    shared = Path(os.environ.get("VIGIL_SHARED_DIR", ROOT.parent / "shared"))
    digests: dict[str, str] = {}
    for path in sorted((shared / "fixtures").rglob("*")):
        if path.is_file() and path.suffix not in {".md"}:
            name = str(path.relative_to(shared))
            digests[name] = _digest(offline_replay([path], settings))
    catalog = TopicCatalog(settings)
    for name in STREAMS:
        records = stream_records(name)
        digests[f"generator:{name}"] = _digest(
            (r.family, r.ts_ms, r.value.decode("utf-8", "replace")) for r in records
        )
        plan = raw_plan(records, catalog, settings.partitions)
        by_topic: dict[str, list] = {}
        for topic, value in expected_outputs(plan, settings):
            by_topic.setdefault(topic, []).append(value)
        for topic, values in sorted(by_topic.items()):
            digests[f"stream:{name}:{topic}"] = _digest(values)
    sys.stdout.write(orjson.dumps(digests, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
