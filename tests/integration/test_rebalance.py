"""Through the real broker, several workers on one machine share the partitions:

- three workers process a stream while a fourth joins and one leaves (SIGTERM): every output
  the offline pipeline emits arrives, none with another value; repeats (same id, same value)
  are allowed and counted;
- with standby replicas (`TABLE_STANDBY_REPLICAS=1`, Faust's own variable), a worker killed
  with SIGKILL is taken over by the other and `vigil.windows` stays complete and unchanged.

The expected outputs and the comparison are scripts/chaos_check.py's
(tests/unit/test_chaos_compare.py checks them against `vigil replay --offline`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import pytest

from app.generator.stream import TelemetryGenerator
from app.settings import REPO_ROOT
from app.topics import OUTPUT_STREAMS
from tests.integration.harness import (
    TopicsReader,
    WorkerFactory,
    end_offsets_total,
    group_offsets,
    produce_records,
    run_sync,
    wait_group_stable,
)

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import chaos_check
from chaos_kafka import create_topics

pytestmark = pytest.mark.integration

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CHECKED = [s for s in OUTPUT_STREAMS if s not in chaos_check.NOT_CHECKED]
#: How much longer a wait that missed its deadline goes on, to tell late from lost (seconds).
LATE_S = 120


@dataclass
class Arrival:
    """How a wait for every expected record ended: complete by the deadline or not, and if not,
    what was missing then, where the missing events came from and whether it all came later."""

    complete: bool
    took: float
    missing: list[str]
    origins: str
    late: bool
    arrived: float


class Stream:
    """A generated stream, its raw-topic plan, the spec's outputs and a live tally."""

    def __init__(self, workers: WorkerFactory, count: int, rate: float, seed: int = 5) -> None:
        self.workers = workers
        settings, catalog = workers.settings, workers.catalog
        records = list(TelemetryGenerator(seed=seed).records(START_MS, rate, count))
        self.plan = chaos_check.raw_plan(records, catalog, settings.partitions)
        spec = chaos_check.Tally(
            CHECKED, {**chaos_check.ORDER_DEPENDENT, **chaos_check.NEARLY_EXACT}
        )
        for topic, value in chaos_check.expected_outputs(self.plan, settings):
            spec.expect(topic, value)
        self.tally = spec.sharing_spec()
        self.expected_events = sum(spec.topics["events"].expected.values())
        self.names = {catalog.name(s): s for s in CHECKED}
        topics = [(catalog.raw(f), settings.partitions) for f in {r.family for r in self.plan}]
        topics += [(catalog.name(s), catalog.partitions(s)) for s in OUTPUT_STREAMS]
        run_sync(create_topics(workers.bootstrap, topics, settings.replicas))

    def produce(self, start: float, end: float) -> None:
        """Produce the records between two shares of the stream (0..1)."""
        part = self.plan[int(start * len(self.plan)) : int(end * len(self.plan))]
        produce_records(
            self.workers.bootstrap,
            ((r.topic, r.key, r.value, r.partition, r.ts_ms) for r in part),
        )

    def reader(self) -> TopicsReader:
        def on_record(topic: str, value) -> None:
            self.tally.receive(self.names[topic], value)

        return TopicsReader(self.workers.bootstrap, list(self.names), on_record)

    def events_on_topic(self) -> int:
        return end_offsets_total(self.workers.bootstrap, self.workers.topic("events"))

    def rows(self, topics: list[str] | None = None) -> dict:
        rows = self.tally.rows()
        return {t: rows[t] for t in topics} if topics else rows

    def missing_events(self) -> str:
        """Where the events that did not arrive come from: each raw partition's offsets, with
        the group's committed offset there (past them: lost; not past them: not processed)."""
        events = self.tally.topics["events"]
        prefix = self.workers.settings.topic_prefix
        offsets: dict[tuple[str, int], list[int]] = {}
        for ident in events.expected:
            if ident not in events.received:
                origin = orjson.loads(events.expected_bodies[ident])["origin"]
                topic = origin["t"] if origin["t"].startswith(prefix) else prefix + origin["t"]
                offsets.setdefault((topic, origin["p"]), []).append(origin["o"])
        if not offsets:
            return "no event missing"
        group = self.workers.settings.app_id
        where = group_offsets(self.workers.bootstrap, group, offsets)
        parts = []
        for tp, found in sorted(offsets.items()):
            committed, end = where[tp]
            verdict = (
                "committed past them"
                if committed is not None and committed > max(found)
                else "not committed"
            )
            parts.append(
                f"{tp[0]}[{tp[1]}] offsets {min(found)}-{max(found)} ({len(found)} events): "
                f"committed {committed}, end {end}, {verdict}"
            )
        return "; ".join(parts)

    def wait_complete(
        self,
        reader: TopicsReader,
        done: Callable[[], bool],
        timeout_s: float,
        live: list,
        since: float,
        topics: list[str] | None = None,
    ) -> Arrival:
        """Wait `timeout_s` for `done()`; if it is not, note what is missing and wait
        `LATE_S` more, to tell late from lost. Times are counted from `since`."""
        complete = reader.wait_until(done, timeout_s, live)
        took = time.monotonic() - since
        missing = [] if complete else chaos_check.failures(self.rows(topics))
        origins = "" if complete else self.missing_events()
        late = not complete and reader.wait_until(done, LATE_S, live)
        return Arrival(complete, took, missing, origins, late, time.monotonic() - since)

    def incomplete(self, arrival: Arrival, deadline: str, rows: dict) -> str:
        """The assertion message of a wait that was not complete at its `deadline`."""
        outcome = (
            f"all arrived {arrival.arrived:.0f} s after (late, not lost)"
            if arrival.late
            else f"missing {arrival.arrived:.0f} s after (lost): {chaos_check.failures(rows)}"
        )
        warnings = "\n".join(w.log_warnings() for w in self.workers.started)
        return (
            f"incomplete {deadline}: {arrival.missing}; {outcome}\n"
            f"missing events: {arrival.origins}\n{warnings}"
        )

    def report(self, title: str, topics: list[str] | None = None) -> dict:
        rows = self.rows(topics)
        print(f"\n{title} ({self.workers.isolation})\n{chaos_check.format_table(rows)}")
        for topic in topics or rows:
            if rows[topic]["order_dependent"]:
                continue
            for ident, want, got in self.tally.topics[topic].examples[:3]:
                print(chaos_check.describe_mismatch(topic, ident, want, got))
        return rows


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


#: The default idle time of the partition clock, longer than the pauses a rebalance makes (the
#: isolation fixture's 2 s would let a rebalance pause make sources idle). Alerts and risk
#: signals, risk and scorecards are judged on coarse keys here (NEARLY_EXACT in
#: scripts/chaos_check.py): `make chaos` measures how exact they are.
CLOCK = {"VIGIL_CLOCK_IDLE_MS": "30000"}


def test_workers_join_and_leave_mid_stream(workers):
    stream = Stream(workers, count=3000, rate=10)
    started = time.monotonic()
    group = [workers.start(f"w{i}", **CLOCK) for i in (1, 2, 3)]
    wait_group_stable(group, 60)
    with stream.reader() as reader:
        stream.produce(0.0, 0.4)
        wait_for(lambda: stream.events_on_topic() >= 0.2 * stream.expected_events, 60, "events")
        joined = workers.start("w4", **CLOCK)  # scale out while events flow
        stream.produce(0.4, 0.7)
        wait_group_stable([*group, joined], 60)
        group[0].stop()  # scale in, gracefully (SIGTERM)
        stream.produce(0.7, 1.0)
        live = [*group[1:], joined]
        arrival = stream.wait_complete(reader, stream.tally.complete, 120, live, time.monotonic())
        time.sleep(2)  # let repeats still in flight arrive before counting
    rows = stream.report(
        f"3 workers, +1 joined, -1 left; {time.monotonic() - started:.0f} s, "
        f"{stream.expected_events} events"
    )
    assert arrival.complete, stream.incomplete(
        arrival, "120 s after the last records were produced", rows
    )
    assert chaos_check.failures(rows) == []
    repeats = sum(row["duplicated"] for row in rows.values())
    print(f"repeated ids (identical values): {repeats}")


def test_standby_replica_takes_over_after_sigkill(workers):
    stream = Stream(workers, count=2500, rate=10, seed=9)
    standby = {"TABLE_STANDBY_REPLICAS": "1"}
    first = workers.start("w1", **standby)
    second = workers.start("w2", **standby)
    wait_group_stable([first, second], 60)  # then w2 holds standby copies of w1's partitions
    with stream.reader() as reader:
        stream.produce(0.0, 0.5)
        wait_for(lambda: stream.events_on_topic() >= 0.3 * stream.expected_events, 60, "events")
        first.kill()
        killed_at = time.monotonic()
        stream.produce(0.5, 1.0)
        windows, events = stream.tally.topics["windows"], stream.tally.topics["events"]

        def everything() -> bool:
            return windows.complete() and events.complete()

        arrival = stream.wait_complete(
            reader, everything, 75, [second], killed_at, ["events", "windows"]
        )
        time.sleep(2)  # for repeats or unexpected records after the last expected one
    rows = stream.report(
        f"standby replicas: w1 killed, w2 took over; complete {arrival.took:.0f} s after the kill",
        ["events", "windows"],
    )
    assert arrival.complete, stream.incomplete(arrival, "75 s after the kill", rows)
    assert chaos_check.failures(rows) == []
    assert "Starting standby partitions" in second.log_path.read_text(errors="replace")
