"""The partition clock (app/runtime/partition_clock.py) and what it buys: alerts and risk signals
that do not depend on how the raw topics interleave."""

from __future__ import annotations

import sys

import pytest

from app.runtime.partition_clock import (
    advance,
    has_active_source,
    is_tick,
    tick_progress,
    tick_value,
)
from app.settings import REPO_ROOT, Settings

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import chaos_order as chaos

IDLE = 1_000
EXPECTED = ("falco", "metrics")


def feed(steps, expected=("falco", "metrics"), record=None):
    """Apply (source, ts, arrival) steps; returns the record and the clocks after each."""
    clocks = []
    for source, ts, arrival in steps:
        step = advance(record, source, ts, arrival, IDLE, expected)
        record = step.record
        clocks.append(step.clock)
    return record, clocks


def test_offline_the_clock_follows_the_newest_event_one_ms_behind():
    _, clocks = feed([("falco", 100, None), ("metrics", 50, None), ("falco", 300, None)])
    assert clocks == [99, 99, 299]


def test_live_the_clock_is_the_lowest_watermark_of_the_sources_still_sending():
    _, clocks = feed(
        [
            ("falco", 500, 0),  # metrics not heard from yet: no clock
            ("metrics", 100, 10),  # both in: the lowest watermark (minus 1 ms)
            ("falco", 900, 20),
            ("metrics", 400, 30),
        ]
    )
    assert clocks == [None, 99, 99, 399]


def test_a_source_never_heard_from_is_waited_for_only_the_idle_time():
    _, clocks = feed([("falco", 500, 0), ("falco", 600, IDLE), ("falco", 700, IDLE + 1)])
    assert clocks == [None, None, 699]


def test_a_quiet_source_stops_holding_the_clock_and_a_tick_notices_it():
    record, clocks = feed([("falco", 100, 0), ("metrics", 900, 0), ("metrics", 950, 500)])
    assert clocks == [None, 99, 99]
    step = advance(record, None, None, 500 + IDLE, IDLE, ("falco", "metrics"))
    assert step.clock == 949  # falco silent for more than IDLE: only metrics counts
    # falco comes back behind the clock: the clock does not go back
    again = advance(step.record, "falco", 200, 600 + IDLE, IDLE, ("falco", "metrics"))
    assert again.clock == 949 and again.before == 949


def test_a_record_from_before_the_clock_reads_as_a_clock_at_its_watermark():
    step = advance({"wm": 5_000}, "falco", 6_000, None, IDLE)
    assert (step.before, step.clock) == (5_000, 5_999)


def test_ticks_are_recognisable():
    assert is_tick(tick_value(123))
    assert not is_tick({"id": "e1", "ts_ms": 1}) and not is_tick(None) and not is_tick(b"x")


@pytest.fixture(scope="module")
def orders():
    """The same generated telemetry in event-time order and as a worker reading a backlog sees
    it: 200 records of one raw topic, then 200 of the next."""
    settings = Settings.from_env({})
    plan = chaos.raw_plan(
        chaos.generate(7, 1_767_225_600_000, 20.0, 4_000), chaos.TopicCatalog(settings, {}), 4
    )
    return settings, *chaos.interleaved(plan, settings, 200)


#: Every output topic the generated stream produces records on.
INTERLEAVING_FREE = (
    "alerts",
    "risk_signals",
    "windows",
    "violations",
    "drift",
    "posture",
    "risk",
    "scorecards",
)


def test_no_output_depends_on_how_sources_interleave(orders):
    """Alerts (partition clock), drift and posture (events held per entity, app/runtime/held.py),
    risk and scorecards (the risk clock, app/runtime/risk_clock.py): the same in both orders."""
    settings, in_time, in_batches = orders
    spec_counts, spec = chaos.process_in_order(in_time, settings)
    _, live = chaos.process_in_order(in_batches, settings, arrivals=True)
    assert spec_counts["alerts:firing"] > 20 and spec_counts["alerts:resolved"] > 0
    for topic in INTERLEAVING_FREE:
        assert spec_counts[topic] > 0, topic
        assert live.get(topic) == spec.get(topic), topic


def test_a_clock_at_the_newest_event_would_make_them_depend_on_it(orders):
    """The check above has teeth: without arrival times (the clock at the newest event time,
    as before the partition clock) the backlog order gives other alerts."""
    settings, in_time, in_batches = orders
    _, spec = chaos.process_in_order(in_time, settings)
    _, newest = chaos.process_in_order(in_batches, settings)
    assert newest["alerts"] != spec["alerts"]


def test_a_pause_of_the_whole_partition_is_charged_to_no_source():
    """Nothing at all for longer than the idle time (no ticks either: every worker was down)
    leaves every source active, so the first one back does not run the clock ahead."""
    record, _ = feed([("falco", 100, 0), ("metrics", 900, 0)])
    expected = ("falco", "metrics")
    after_restart = advance(record, "metrics", 950, 5 * IDLE, IDLE, expected)
    assert after_restart.clock == 99  # falco still holds it
    # ticks come again while a worker runs; falco stays silent for the idle time: now it is idle
    tick = advance(after_restart.record, None, None, 5 * IDLE + IDLE // 2, IDLE, expected)
    assert tick.clock == 99
    tick = advance(tick.record, None, None, 6 * IDLE + 1, IDLE, expected)
    assert tick.clock == 950  # every source idle: the newest events are all in


def test_settling_moves_the_clock_to_the_newest_event():
    """Offline end of input: as when every source went idle."""
    record, clocks = feed([("falco", 100, None), ("metrics", 900, None)])
    assert clocks[-1] == 899
    assert advance(record, None, None, None, IDLE, settle=True).clock == 900


def test_the_idle_time_must_exceed_the_tick_period():
    with pytest.raises(ValueError, match="VIGIL_CLOCK_IDLE_MS must be longer"):
        Settings.from_env({"VIGIL_CLOCK_IDLE_MS": "5000", "VIGIL_CLOCK_TICK_MS": "5000"})
    assert Settings.from_env({"VIGIL_CLOCK_TICK_MS": "0", "VIGIL_CLOCK_IDLE_MS": "1"})


def test_a_slow_worker_with_ingest_progress_still_matches_event_time_order(orders):
    """A worker reading the backlog at 50 ms an event leaves each source silent on a partition
    for longer than the idle time while its raw partition still has records waiting. The ticks'
    ingest progress keeps such a source in the clock (and moves its watermark on partitions it
    does not send to), so every output is still the event-time order's."""
    settings, in_time, in_batches = orders
    _, spec = chaos.process_in_order(in_time, settings)
    _, slow = chaos.process_in_order(in_batches, settings, arrivals=True, ms_per_event=50)
    for topic in INTERLEAVING_FREE:
        assert slow.get(topic) == spec.get(topic), topic


def test_without_progress_a_slow_worker_takes_busy_sources_for_idle(orders):
    """The check above has teeth: the same slow reading with ticks that carry no progress
    (idleness inferred from arrival gaps alone) gives other alerts."""
    settings, in_time, in_batches = orders
    _, spec = chaos.process_in_order(in_time, settings)
    _, slow = chaos.process_in_order(
        in_batches, settings, arrivals=True, ms_per_event=50, progress=False
    )
    assert slow["alerts"] != spec["alerts"]


def test_a_source_with_records_waiting_is_never_idle():
    """However long its silence here, a source whose raw partition has records waiting holds
    the clock; once reported read to its end, it counts only while heard from within the idle
    time, as before."""
    record, _ = feed([("falco", 100, 0), ("metrics", 900, 0)])
    expected = ("falco", "metrics")
    waiting = {"falco": {"0": [100, True]}, "metrics": {"0": [900, False]}}
    for at in range(IDLE // 2, 10 * IDLE, IDLE // 2):
        step = advance(record, None, None, at, IDLE, expected, progress=waiting)
        record = step.record
        assert step.clock == 99, at
    step = advance(record, "falco", 150, 10 * IDLE, IDLE, expected, progress=waiting)
    assert step.clock == 149
    done = {"falco": {"0": [150, False]}}
    step = advance(step.record, None, None, 10 * IDLE + 10, IDLE, expected, progress=done)
    assert step.clock == 149  # read to its end, but heard from within the idle time
    step = advance(step.record, None, None, 11 * IDLE + 1, IDLE, expected, progress=done)
    assert step.clock == 900  # and now silent for the idle time: every source idle


def test_a_reported_watermark_moves_a_source_that_sends_elsewhere():
    """A source busy on other partitions holds this one at its reported raw watermark, not at
    the last event it sent here; a lower report later (a new owner re-reading) never moves it
    back, and a report with no watermark yet leaves the partition's own one."""
    record, _ = feed([("falco", 100, 0), ("metrics", 900, 0)])
    expected = ("falco", "metrics")
    step = advance(record, None, None, 10, IDLE, expected, progress={"falco": {"0": [500, True]}})
    assert step.clock == 499
    step = advance(
        step.record, None, None, 20, IDLE, expected, progress={"falco": {"0": [300, True]}}
    )
    assert step.clock == 499 and step.record["prog"]["falco"]["0"][0] == 500
    fresh = advance(record, None, None, 10, IDLE, expected, progress={"falco": {"0": [None, True]}})
    assert fresh.clock == 99


def test_a_tick_carries_the_progress_it_is_given():
    value = tick_value(5, {"telemetry.falco": {"0": [100, True]}})
    assert is_tick(value) and tick_progress(value) == {"telemetry.falco": {"0": [100, True]}}
    assert tick_progress(tick_value(5)) is None


def test_the_pipeline_counts_events_that_arrive_behind_its_clock():
    settings = Settings.from_env({})
    pipeline = chaos.Pipeline(settings)
    base = {"entity": "host-1", "source": "falco", "type": "runtime_alert", "severity": "low"}

    def event(n, ts):
        return chaos.Event.from_dict({**base, "id": f"e{n}", "ts_ms": ts})

    topics = sorted(pipeline.raw_topics)
    pipeline.raw_topics = frozenset(topics[:1])  # one source: the clock follows it
    for n, ts in enumerate([1_000, 5_000, 3_000]):
        ev = event(n, ts)
        ev.origin = {"t": topics[0], "p": 0, "o": n, "i": 0}
        pipeline.process(ev, 0, arrival_ms=n).commit()
    assert pipeline.behind_clock == 1


def test_empty_raw_partitions_do_not_hide_a_reported_watermark():
    """A topic's partitions read to their end without ever an event (empty) leave its
    reported watermark to the others; one with records waiting and no watermark yet makes it
    unknown, and the partition's own watermark for the source counts."""
    record, _ = feed([("falco", 100, 0), ("metrics", 900, 0)])
    expected = ("falco", "metrics")
    empty = {"falco": {"0": [500, True], "1": [None, False], "2": [None, False]}}
    step = advance(record, None, None, 10, IDLE, expected, progress=empty)
    assert step.clock == 499
    assert step.record["prog"] == {"falco": {"0": [500, True, 10]}}  # empty ones not stored
    unknown = {"falco": {"0": [500, True], "1": [None, True]}}
    step = advance(record, None, None, 10, IDLE, expected, progress=unknown)
    assert step.clock == 99


def test_a_waiting_source_with_no_watermark_known_holds_the_clock_and_is_not_idle():
    """A source that never sent to this partition, with records waiting in a raw partition not
    read yet (no `W`), could bring events older than anything seen here: the clock does not
    move past them, and the partition does not call itself idle (the risk stage would stop
    waiting for it). Once its `W` is reported, it holds the clock there."""
    record, clocks = feed([("metrics", 900, 0)])
    assert clocks == [None]  # falco not heard from yet
    unknown = {"falco": {"0": [None, True]}}
    step = advance(record, None, None, 10, IDLE, EXPECTED, progress=unknown)
    assert step.clock is None
    quiet = advance(step.record, None, None, 5 * IDLE, IDLE, EXPECTED, progress=unknown)
    assert quiet.clock is None  # metrics idle by now, falco still waiting
    assert has_active_source(quiet.record, 5 * IDLE, IDLE)
    known = {"falco": {"0": [300, True]}}
    step = advance(quiet.record, None, None, 5 * IDLE + 10, IDLE, EXPECTED, progress=known)
    assert step.clock == 299
    done = {"falco": {"0": [None, False]}}
    step = advance(record, None, None, 10, IDLE, EXPECTED, progress=done)
    assert step.clock == 899  # read to its end without an event: metrics alone counts
    step = advance(step.record, None, None, IDLE + 5, IDLE, EXPECTED, progress=done)
    assert step.clock == 900 and not has_active_source(step.record, IDLE + 5, IDLE)
