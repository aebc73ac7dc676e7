"""CPU per raw record of Vigil's logic alone, offline (no Kafka): `Pipeline.ingest`, then
`Pipeline.process` and the rest of the stateful logic, timed apart.

The bench stream of scripts/replay_digest.py (seed 11, 0.2 % malformed, 20,000 records) is
ingested as `scripts/chaos_check.py`'s spec ingests it (each record with the Origin a worker
builds from its Kafka message), then its events go through `app.replay.replay_events` (the
stateful logic in event-time order, each event in its entity's partition, with the risk
stage), as `vigil replay --offline` runs them. Each part is timed with `time.process_time`,
best of `--rounds`; printed as JSON, in ms per raw record. `--part` runs one part only (for a
profiler: `py-spy record -f raw -o prof.raw -r 200 -- python scripts/bench_logic.py --part
process`, read with `scripts/spy_frames.py prof.raw --under run_process`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chaos_check import ingest_plan, raw_plan  # noqa: E402
from replay_digest import stream_records  # noqa: E402

from app.model.outputs import Output  # noqa: E402
from app.pipeline import Pipeline  # noqa: E402
from app.replay import replay_events  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.topics import TopicCatalog  # noqa: E402


def best_cpu_ms(work: Callable[[], object], rounds: int) -> float:
    """The least CPU time (ms) `work` took over `rounds` runs."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="bench", help="a stream of replay_digest.STREAMS")
    parser.add_argument("--rounds", type=int, default=3, help="runs per part (best counts)")
    parser.add_argument("--part", choices=("ingest", "process", "both"), default="both")
    args = parser.parse_args(argv)

    settings = Settings()
    records = stream_records(args.stream)
    plan = raw_plan(records, TopicCatalog(settings), settings.partitions)
    ingest = Pipeline(settings)
    events: list[Output] = [o for o in ingest_plan(ingest, plan) if o.topic == "events"]

    def run_ingest() -> None:
        for _ in ingest_plan(ingest, plan):
            pass

    def run_process() -> None:
        for _ in replay_events(events, settings, ingest.catalogue, flush=False):
            pass

    figures: dict[str, object] = {"stream": args.stream, "raw_records": len(plan)}
    figures["events"] = len(events)
    if args.part in ("ingest", "both"):
        figures["ingest_ms_per_raw"] = best_cpu_ms(run_ingest, args.rounds) / len(plan)
    if args.part in ("process", "both"):
        figures["process_ms_per_raw"] = best_cpu_ms(run_process, args.rounds) / len(plan)
    if args.part == "both":
        figures["total_ms_per_raw"] = figures["ingest_ms_per_raw"] + figures["process_ms_per_raw"]
    figures = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    sys.stdout.write(orjson.dumps(figures).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
