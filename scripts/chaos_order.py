"""`scripts/chaos.py order` (no Kafka): the same generated events processed in event-time
order (the spec) and in the order a worker reading a backlog sees them, and which outputs
differ. tests/unit/runtime/test_partition_clock.py and test_partial_step.py build on it."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from chaos_check import RawPlan, canonical, generate, kafka_origin, raw_plan, wall_clock

from app.model.events import Event
from app.pipeline import Pipeline, PipelineState
from app.replay import OfflineRisk
from app.runtime.risk_clock import RiskClock
from app.settings import Settings
from app.topics import TopicCatalog, entity_partition


def interleaved(plan: list[RawPlan], settings: Settings, batch: int) -> tuple[list[Any], list[Any]]:
    """The spec's events in event-time order, and in the order a worker reading a backlog
    sees them: `batch` records of one raw topic, then `batch` of the next, round robin."""
    ingest = Pipeline(settings)
    by_family: dict[str, list[list[Any]]] = {}
    for rec in plan:
        outs = ingest.ingest(rec.value, rec.family, kafka_origin(rec))
        by_family.setdefault(rec.family, []).append([o for o in outs if o.topic == "events"])
    everything = [e for records in by_family.values() for events in records for e in events]
    in_time = sorted(everything, key=lambda out: (out.value["ts_ms"], out.value["id"]))
    in_batches: list[Any] = []
    for start in range(0, max(len(r) for r in by_family.values()), batch):
        for records in by_family.values():
            for events in records[start : start + batch]:
                in_batches.extend(events)
    return in_time, in_batches


def process_in_order(
    events: list[Any],
    settings: Settings,
    arrivals: bool = False,
    ms_per_event: int = 1,
    progress: bool = True,
) -> tuple[Counter, dict[str, set[bytes]]]:
    """Output counts per topic (alerts also per notification kind) and every output's
    canonical value per topic, for events in this order, each in its entity's partition, as
    `offline_replay` processes them. With `arrivals`, event n arrives at n * `ms_per_event` ms,
    as on a worker (app/runtime/partition_clock.py): clock ticks come every `clock_tick_ms` of
    arrival time, carrying the ingest progress (each raw partition's newest event time so far
    and whether events of it remain; none without `progress`), and follow the last event until
    every source is idle."""
    silences: dict[str, Any] = {}
    inhibitors: dict[str, Any] = {}
    partitions = {
        p: Pipeline(settings, PipelineState(silences=silences, inhibitors=inhibitors))
        for p in range(settings.partitions)
    }
    counts: Counter = Counter()
    values: dict[str, set[bytes]] = {}
    risk = OfflineRisk(settings, None, events, partitions)
    if arrivals:  # a worker's risk stage: every partition is a producer
        risk.clock = RiskClock(risk.stage, producers=settings.partitions)

    def count(out: Any) -> None:
        if wall_clock(out.topic, out.value):
            return
        counts[out.topic] += 1
        values.setdefault(out.topic, set()).add(canonical(out.value))
        if out.topic == "alerts":
            counts[f"alerts:{out.value.get('notification')}"] += 1

    def collect(step: Any) -> None:
        for out in risk.follow(step):
            count(out)

    remaining = Counter(_raw_partition(out) for out in events)
    marks: dict[tuple[str, int], int] = {}

    def report() -> dict[str, Any] | None:
        if not progress:
            return None
        sent: dict[str, dict[str, list[Any]]] = {}
        for topic in {topic for topic, _ in remaining}:  # every partition, the empty ones too
            for part in range(settings.partitions):
                left = remaining.get((topic, part), 0)
                sent.setdefault(topic, {})[str(part)] = [marks.get((topic, part)), left > 0]
        return sent

    next_tick = settings.clock_tick_ms
    for n, out in enumerate(events):
        partition = entity_partition(out.key or "", settings.partitions)
        event = Event.from_dict(out.value)
        arrival = n * ms_per_event if arrivals else None
        if not arrivals:
            for scored in risk.before_event(partition, out.value["ts_ms"]):
                count(scored)
        else:
            while next_tick <= arrival:  # the ticks written while this event was on its way
                tick = report()
                for p, pipeline in partitions.items():
                    collect(pipeline.tick(p, next_tick, progress=tick))
                next_tick += settings.clock_tick_ms
        collect(partitions[partition].process(event, partition, arrival_ms=arrival))
        raw = _raw_partition(out)
        remaining[raw] -= 1
        marks[raw] = max(marks.get(raw, out.value["ts_ms"]), out.value["ts_ms"])
    if arrivals:  # then clock ticks, as workers write them, until every source is idle
        step = settings.clock_tick_ms
        end = len(events) * ms_per_event
        for at in range(end + step, end + settings.clock_idle_ms + 2 * step, step):
            for partition, pipeline in partitions.items():
                collect(pipeline.tick(partition, at, progress=report()))
    else:  # as `offline_replay` ends: clocks to the newest event, then to the risk stage
        for partition, pipeline in partitions.items():
            collect(pipeline.settle(partition))
        for scored in risk.end():
            count(scored)
    # What the bounds let through in arrival order (docs/crash-safety.md, "within bounds").
    for pipeline in partitions.values():
        counts["(events behind the clock)"] += pipeline.behind_clock
        counts["(held events applied early)"] += pipeline.held_overflow
        counts["(alert inputs applied early)"] += pipeline.alerts.stats["overflow"]
    counts["(risk signals applied early)"] += risk.stage.stats["overflow"]
    return counts, values


def _raw_partition(out: Any) -> tuple[str, int]:
    """The raw (topic, partition) an `events` output was ingested from."""
    origin = out.value.get("origin") or {}
    return origin.get("t", out.value["source"]), origin.get("p", 0)


def run_order(args: argparse.Namespace) -> int:
    """Print output counts for event-time order vs batch-by-topic order (order-dependence),
    and per topic how many outputs of the second order the first does not have, and back."""
    settings = Settings.from_env({})
    catalog = TopicCatalog(settings, {})
    start_ms = args.start_ms if args.start_ms is not None else 1_767_225_600_000
    plan = raw_plan(generate(args.seed, start_ms, args.rate, args.count), catalog, 4)
    in_time, in_batches = interleaved(plan, settings, args.batch)
    spec_counts, spec_values = process_in_order(in_time, settings)
    live_counts, live_values = process_in_order(in_batches, settings, arrivals=True)
    rows = {
        "event-time order (spec)": spec_counts,
        f"{args.batch} records per raw topic, round robin": live_counts,
    }
    names = sorted(set().union(*rows.values()))
    width = max(len(n) for n in names)
    print(f"{args.count} records, seed {args.seed}: outputs per topic")
    print(" " * width + "  " + "  ".join(f"{label:>42}" for label in rows))
    for name in names:
        print(name.ljust(width) + "  " + "  ".join(f"{c[name]:>42}" for c in rows.values()))
    print("\noutputs only in one order (same value = same output):")
    differ = 0
    for topic in sorted(set(spec_values) | set(live_values)):
        spec, live = spec_values.get(topic, set()), live_values.get(topic, set())
        only_spec, only_live = len(spec - live), len(live - spec)
        differ += only_spec + only_live
        name = topic.ljust(width)
        print(f"{name}  only in spec {only_spec:>6}  only in the other {only_live:>6}")
    return 1 if differ else 0
