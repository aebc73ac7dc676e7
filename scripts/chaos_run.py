"""`scripts/chaos.py run`: SIGKILL a worker while it processes a generated backlog, restart it
on the same data dir, and check that every output the spec emits arrived, unchanged (see
scripts/chaos.py for the whole procedure)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from chaos_check import (
    LEGEND,
    NOT_CHECKED,
    Tally,
    describe_mismatch,
    expected_outputs,
    failures,
    format_table,
    generate,
    raw_plan,
)
from chaos_kafka import Collector, create_topics, group_lag, isolated_workers, log, produce_plan

from app import kafka_io
from app.topics import OUTPUT_STREAMS


async def run_chaos(args: argparse.Namespace) -> int:
    """The `run` subcommand: 0 when every exact topic matches the spec, else 1."""
    env = {"VIGIL_ALIGN_DRIFT_MS": "60000"}  # as measured
    async with isolated_workers("", args.guarantee, args.keep, **env) as (tag, factory):
        collectors: list[Collector] = []
        try:
            return await _chaos(args, tag, factory.bootstrap, factory, collectors)
        finally:
            for collector in collectors:
                with contextlib.suppress(Exception):
                    await collector.stop()


async def _chaos(
    args: argparse.Namespace,
    tag: str,
    bootstrap: str,
    factory: Any,
    collectors: list[Collector],
) -> int:
    settings, catalog = factory.settings, factory.catalog
    streams = [s for s in OUTPUT_STREAMS if s not in NOT_CHECKED]
    start_ms = args.start_ms if args.start_ms is not None else _recent_start_ms(args)

    log(f"tag {tag}: generating {args.count} records (seed {args.seed}, {args.rate}/s)")
    records = generate(args.seed, start_ms, args.rate, args.count)
    plan = raw_plan(records, catalog, settings.partitions)
    started = time.monotonic()
    spec = Tally(streams)
    for topic, value in expected_outputs(plan, settings):
        spec.expect(topic, value)
    expected_events = sum(spec.topics["events"].expected.values())
    log(
        f"spec: {sum(sum(t.expected.values()) for t in spec.topics.values())} outputs, "
        f"{expected_events} events ({time.monotonic() - started:.0f} s)"
    )

    families = sorted({r.family for r in plan})
    specs = [(catalog.raw(f), settings.partitions) for f in families]
    specs += [(catalog.name(s), catalog.partitions(s)) for s in OUTPUT_STREAMS]
    await create_topics(bootstrap, specs, settings.replicas)
    await produce_plan(bootstrap, plan)
    log(f"produced {len(plan)} raw records to {len(families)} topics")

    names = {catalog.name(s): s for s in streams}
    isolations = ["read_committed"]
    if args.guarantee == "exactly_once" and not args.no_uncommitted:
        isolations.append("read_uncommitted")
    tallies = {}
    for isolation in isolations:
        tally = tallies[isolation] = spec.sharing_spec()
        collector = Collector(bootstrap, names, tally, isolation)
        await collector.start()
        collectors.append(collector)
    main = collectors[0]

    kill_at = [int(float(f) * expected_events) for f in args.kill_at.split(",") if f.strip()]
    events_topic = catalog.name("events")
    incarnation = 0
    worker = factory.start("w1")
    datadir = worker.env["APP_DATADIR"]
    t_start = time.monotonic()
    log(f"worker started (pid {worker.process.pid}, {args.guarantee}); kills at {kill_at}")
    kills: list[dict[str, Any]] = []
    self_exits = 0
    complete_at = None
    deadline = t_start + args.timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        if worker.process.poll() is not None:  # died on its own: restart, as a supervisor would
            self_exits += 1
            log(f"worker exited by itself ({worker.process.returncode}); restarting")
            log("  " + worker.log_tail(8).replace("\n", "\n  "))
            incarnation += 1
            worker = factory.start(f"w1-{incarnation}", APP_DATADIR=datadir)
            continue
        if kill_at:
            on_events = sum((await kafka_io.end_offsets(bootstrap, [events_topic])).values())
            if on_events >= kill_at[0]:
                await _log_bounds(worker)
                worker.kill()
                kills.append(
                    {
                        "at_events": on_events,
                        "target": kill_at.pop(0),
                        "elapsed_s": round(time.monotonic() - t_start, 1),
                    }
                )
                log(f"SIGKILL with {on_events} records on {events_topic}")
                incarnation += 1
                worker = factory.start(f"w1-{incarnation}", APP_DATADIR=datadir)
            continue
        if complete_at is None and main.tally.complete():
            complete_at = time.monotonic()
            log(f"every expected output arrived ({complete_at - t_start:.0f} s after start)")
        quiet = time.monotonic() - main.last_record_at
        if complete_at is not None and quiet >= args.settle:
            break
        if complete_at is None and quiet >= args.stall:
            log(f"no new output for {args.stall:.0f} s and outputs incomplete: giving up")
            break
    else:
        log("timeout")
    await _log_bounds(worker)
    for collector in collectors:
        await collector.drain()
    inputs = [catalog.raw(f) for f in families] + [events_topic]
    try:
        lag = await group_lag(bootstrap, settings.app_id, inputs)
    except Exception as exc:
        lag = {"error": repr(exc)}
    end = complete_at or time.monotonic()
    elapsed = end - t_start
    from_first = end - (main.first_event_at or t_start)
    result: dict[str, Any] = {
        "tag": tag,
        "guarantee": args.guarantee,
        "seed": args.seed,
        "start_ms": start_ms,
        "rate": args.rate,
        "raw_records": len(plan),
        "expected_events": expected_events,
        "kills": kills,
        "self_exits": self_exits,
        "complete": complete_at is not None,
        "seconds_to_complete": round(elapsed, 1),
        "raw_records_per_s": round(len(plan) / from_first, 1) if from_first > 0 else None,
        "group_lag": lag,
        "tables": {},
    }
    for isolation, tally in tallies.items():
        rows = tally.rows()
        result["tables"][isolation] = rows
        print(f"\n== {args.guarantee}, consumer isolation {isolation}, {len(kills)} kills ==")
        print(format_table(rows))
        for topic, t in tally.topics.items():
            if t.coarse is not None:
                lost = sorted(map(str, t.expected_keys - t.received_keys))
                if lost:
                    print(f"  {topic} keys lost ({len(lost)}): {', '.join(lost[:3])[:300]}")
                continue
            for ident, want, got in t.examples[:2]:
                print(describe_mismatch(topic, ident, want, got))
            for ident in sorted(set(t.expected) - set(t.received))[:3]:
                print(f"  {topic} lost {ident}: {t.expected_bodies[ident].decode()[:400]}")
    print("\n" + LEGEND)
    print(
        f"\nraw records {len(plan)}, expected events {expected_events}, kills {len(kills)}, "
        f"self-exits {self_exits}, complete={complete_at is not None} after {elapsed:.0f} s, "
        f"{result['raw_records_per_s']} raw records/s from the first event; input lag {lag}"
    )
    bad = failures(tallies["read_committed"].rows(), strict=args.strict)
    verdict = "FAIL: " + "; ".join(bad) if bad else "PASS (exact topics: nothing lost or changed)"
    print("RESULT: " + verdict)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 1 if bad else 0


def _recent_start_ms(args: argparse.Namespace) -> int:
    """A start so the stream ends about now: broker timestamps stay inside topic retention."""
    span_ms = int(args.count * 1000 / args.rate)
    now = int(time.time() * 1000)
    return (now - span_ms - 600_000) // 60_000 * 60_000


#: Worker metrics that say an output may follow the arrival order rather than the clocks.
_ORDER_METRICS = ("vigil_bound_overflow_total", "vigil_events_behind_clock_total")


async def _log_bounds(worker: Any) -> None:
    """Log the worker's bound overflows and events behind the clock (counted since it
    started), read from its /metrics just before it is killed or the run ends."""
    url = f"http://127.0.0.1:{worker.web_port}/metrics"

    def scrape() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    try:
        text = await asyncio.to_thread(scrape)
    except OSError as exc:
        log(f"  worker metrics not read ({exc})")
        return
    found = [
        line
        for line in text.splitlines()
        if line.startswith(_ORDER_METRICS) and not line.endswith(" 0.0")
    ]
    log("  order limits reached: " + ("; ".join(found) if found else "none"))
