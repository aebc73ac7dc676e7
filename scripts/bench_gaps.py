"""Event-time gaps cost work proportional to what is due, not to the gap (issue 26).

The same generated stream is replayed offline (the stateful logic the workers run, no Kafka)
twice over the same span of event time: with every series given random gaps of up to 90 days
(each event of an entity, with probability `GAP_CHANCE`, comes after a pause of 1 minute to 90
days; the pauses add up per entity), and gapless (the same events in generated order, spread
evenly over that span). Prints JSON: CPU ms per event and output records per event of each, and the
ratio gapped / gapless, which should stay within 2x.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.events import format_time  # noqa: E402
from app.generate import TelemetryGenerator  # noqa: E402
from app.outputs import Origin, Output  # noqa: E402
from app.pipeline import Pipeline  # noqa: E402
from app.replay import replay_events  # noqa: E402
from app.settings import Settings  # noqa: E402

RECORDS = int(os.environ.get("BENCH_GAP_RECORDS", "8000"))
GAP_CHANCE = float(os.environ.get("BENCH_GAP_CHANCE", "0.05"))
MAX_GAP_MS = 90 * 24 * 3_600_000


def canonical_events(settings: Settings, count: int) -> tuple[list[Output], Pipeline]:
    """The `events` outputs of the ingest stage for a generated stream."""
    ingest = Pipeline(settings)
    start_ms = int(os.environ.get("BENCH_GAP_START_MS", "1735689600000"))  # 2025-01-01
    events: list[Output] = []
    generator = TelemetryGenerator(seed=23, bad_ratio=0.0)
    for n, record in enumerate(generator.records(start_ms, 200.0, count)):
        origin = Origin(topic=f"telemetry.{record.family}", partition=None, offset=n)
        outputs = ingest.ingest(record.value, record.family, origin)
        events += [out for out in outputs if out.topic == "events"]
    return events, ingest


def at_time(event: Output, ts_ms: int) -> Output:
    """The event moved to `ts_ms`."""
    value = {**event.value, "ts_ms": ts_ms, "time": format_time(ts_ms)}
    return Output(event.topic, event.key, value)


def with_gaps(events: list[Output], seed: int = 5) -> list[Output]:
    """The same events, each entity's shifted by its own accumulating random pauses."""
    rng = random.Random(seed)
    shift: dict[str, int] = {}
    out = []
    for event in sorted(events, key=lambda o: (o.value["ts_ms"], o.value["id"])):
        entity = event.key or ""
        if rng.random() < GAP_CHANCE:
            shift[entity] = shift.get(entity, 0) + rng.randint(60_000, MAX_GAP_MS)
        ts = event.value["ts_ms"] + shift.get(entity, 0)
        out.append(at_time(event, ts))
    return out


def spread_like(events: list[Output], template: list[Output]) -> list[Output]:
    """`events` in their order, without gaps, spread evenly over the time span of `template`:
    the same number of events in the same event time as the gapped stream, every series
    interleaved as generated."""
    ordered = sorted(events, key=lambda o: (o.value["ts_ms"], o.value["id"]))
    times = [o.value["ts_ms"] for o in template]
    first, span = min(times), max(times) - min(times)
    out = []
    for n, event in enumerate(ordered):
        ts = first + span * n // max(1, len(ordered) - 1)
        out.append(at_time(event, ts))
    return out


def measure(events: list[Output], settings: Settings, catalogue) -> dict:
    """CPU time and outputs of replaying `events` through the stateful logic."""
    started = time.process_time()
    outputs = sum(1 for _ in replay_events(events, settings, catalogue))
    cpu = time.process_time() - started
    return {
        "events": len(events),
        "cpu_ms_per_event": round(cpu * 1000 / len(events), 4),
        "outputs_per_event": round(outputs / len(events), 2),
    }


def main() -> int:
    settings = Settings.from_env()
    events, ingest = canonical_events(settings, RECORDS)
    gapped_events = with_gaps(events)
    span_days = (
        max(o.value["ts_ms"] for o in gapped_events) - min(o.value["ts_ms"] for o in gapped_events)
    ) / 86_400_000
    gapless = measure(events, settings, ingest.catalogue)
    spread = measure(spread_like(events, gapped_events), settings, ingest.catalogue)
    gapped = measure(gapped_events, settings, ingest.catalogue)
    result = {
        "span_days": round(span_days, 1),
        "gapless": gapless,
        "gapped": gapped,
        "gapless_same_span": spread,
        "max_gap_days": MAX_GAP_MS // 86_400_000,
        "cpu_ratio": round(gapped["cpu_ms_per_event"] / gapless["cpu_ms_per_event"], 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
