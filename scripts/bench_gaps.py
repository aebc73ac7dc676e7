"""Event-time gaps cost work in proportion to what is due in them, not to their length.

The same generated stream is replayed offline (the stateful logic the workers run, no Kafka):

- `gapless`: as generated at `RATE` records per second of event time (75 minutes for the
  default 9,000 records: windows close, alerts fire and resolve, risk moves);
- `gapped`: the same events, every series given random pauses of up to 90 days (each event of
  an entity, with probability `GAP_CHANCE`, comes after a pause of 1 minute to 90 days; an
  entity's pauses add up, so the stream spans years);
- `gapless_dense`: as generated at 200 records per second (45 s of event time: no window
  closes, so the stateful stages do little; reported for comparison only);
- `sparse_same_span`: the gapless events spread evenly over the gapped stream's span (an event
  every few hours per partition: every clock step a jump).

`cpu_ratio` = gapped / gapless CPU per event (best of `REPEATS` runs each); issue 26 asks for
at most 2. Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_logic import best_cpu_ms  # noqa: E402

from app.generator.stream import TelemetryGenerator  # noqa: E402
from app.model.events import format_time  # noqa: E402
from app.model.outputs import Origin, Output  # noqa: E402
from app.pipeline import Pipeline  # noqa: E402
from app.replay import replay_events  # noqa: E402
from app.settings import Settings  # noqa: E402

RECORDS = int(os.environ.get("BENCH_GAP_RECORDS", "8000"))
GAP_CHANCE = float(os.environ.get("BENCH_GAP_CHANCE", "0.05"))
MAX_GAP_MS = 90 * 24 * 3_600_000
#: Records per second of event time: slow enough that windows close and alerts fire and
#: resolve within the gapless stream too, as they do around every pause of the gapped one.
RATE = float(os.environ.get("BENCH_GAP_RATE", "2"))
REPEATS = int(os.environ.get("BENCH_GAP_REPEATS", "3"))
START_MS = int(os.environ.get("BENCH_GAP_START_MS", "1735689600000"))  # 2025-01-01


def canonical_events(settings: Settings, count: int, rate: float) -> tuple[list[Output], Pipeline]:
    """The `events` outputs of the ingest stage for a generated stream."""
    ingest = Pipeline(settings)
    events: list[Output] = []
    generator = TelemetryGenerator(seed=23, bad_ratio=0.0)
    for n, record in enumerate(generator.records(START_MS, rate, count)):
        origin = Origin(topic=f"telemetry.{record.family}", partition=None, offset=n)
        outputs = ingest.ingest(record.value, record.family, origin)
        events += [out for out in outputs if out.topic == "events"]
    return events, ingest


def at_time(event: Output, ts_ms: int) -> Output:
    """The event moved to `ts_ms`."""
    value = {**event.value, "ts_ms": ts_ms, "time": format_time(ts_ms)}
    return Output(event.topic, event.key, value)


def in_order(events: list[Output]) -> list[Output]:
    return sorted(events, key=lambda o: (o.value["ts_ms"], o.value["id"]))


def with_gaps(events: list[Output], seed: int = 5) -> list[Output]:
    """The same events, each entity's shifted by its own accumulating random pauses."""
    rng = random.Random(seed)
    shift: dict[str, int] = {}
    out = []
    for event in in_order(events):
        entity = event.key or ""
        if rng.random() < GAP_CHANCE:
            shift[entity] = shift.get(entity, 0) + rng.randint(60_000, MAX_GAP_MS)
        out.append(at_time(event, event.value["ts_ms"] + shift.get(entity, 0)))
    return out


def spread_like(events: list[Output], template: list[Output]) -> list[Output]:
    """`events` in their order, spread evenly over the time span of `template`."""
    times = [o.value["ts_ms"] for o in template]
    first, span = min(times), max(times) - min(times)
    ordered = in_order(events)
    last = max(1, len(ordered) - 1)
    return [at_time(event, first + span * n // last) for n, event in enumerate(ordered)]


def measure(events: list[Output], settings: Settings, catalogue) -> dict:
    """CPU time per event (best of REPEATS) and outputs of replaying `events`."""
    outputs = 0

    def replay() -> None:
        nonlocal outputs
        outputs = sum(1 for _ in replay_events(events, settings, catalogue))

    best_ms = best_cpu_ms(replay, REPEATS)
    return {
        "events": len(events),
        "cpu_ms_per_event": round(best_ms / len(events), 4),
        "outputs_per_event": round(outputs / len(events), 2),
    }


def main() -> int:
    settings = Settings.from_env()
    events, ingest = canonical_events(settings, RECORDS, RATE)
    gapped_events = with_gaps(events)
    times = [o.value["ts_ms"] for o in gapped_events]
    gapless = measure(events, settings, ingest.catalogue)
    gapped = measure(gapped_events, settings, ingest.catalogue)
    dense, dense_ingest = canonical_events(settings, RECORDS, 200.0)
    result = {
        "records": RECORDS,
        "rate_per_s": RATE,
        "gap_chance": GAP_CHANCE,
        "max_gap_days": MAX_GAP_MS // 86_400_000,
        "gapped_span_days": round((max(times) - min(times)) / 86_400_000, 1),
        "gapless": gapless,
        "gapped": gapped,
        "gapless_dense": measure(dense, settings, dense_ingest.catalogue),
        "sparse_same_span": measure(spread_like(events, gapped_events), settings, ingest.catalogue),
        "cpu_ratio": round(gapped["cpu_ms_per_event"] / gapless["cpu_ms_per_event"], 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
