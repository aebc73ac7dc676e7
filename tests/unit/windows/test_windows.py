"""Event-time windows: assignment, watermark, grace, late side output, exactly-once close,
bounded state, order independence and restart."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from app.model.events import Event, event_id
from app.pipeline import Pipeline, PipelineState
from app.runtime.batch import Batch
from app.settings import Settings
from tables.windows.event_windows import WindowSpec, add_event, close_due
from tables.windows.series_windows import watermark_key

MINUTE = 60_000
SETTINGS = Settings(window_ms=MINUTE, window_grace_ms=30_000, anomaly_threshold=2.0)
SETTINGS_SPEC = WindowSpec.tumbling(MINUTE, 30_000)


def metric(ts_ms: int, value: float, service: str = "payments") -> Event:
    series = f'latency{{service="{service}"}}'
    return Event(
        id=event_id("test", series, ts_ms, value),
        source="metrics",
        type="metric",
        ts_ms=ts_ms,
        entity=f"service:{service}",
        severity="info",
        attributes={"name": "latency", "series": series, "value": value},
    )


def run(events, settings=SETTINGS, pipeline=None, flush=False):
    pipeline = pipeline or Pipeline(settings)
    outputs = []
    for event in events:
        step = pipeline.process(event, 0)
        step.commit()
        outputs.extend(step.outputs)
    if flush:
        step = pipeline.flush()
        step.commit()
        outputs.extend(step.outputs)
    return pipeline, outputs


def finals(outputs):
    return [o.value for o in outputs if o.topic == "windows" and o.value["kind"] == "metric"]


def test_tumbling_and_hopping_assignment():
    assert WindowSpec.tumbling(MINUTE, 0).starts_for(90_000) == [60_000]
    hopping = WindowSpec(size_ms=3 * MINUTE, hop_ms=MINUTE, grace_ms=0)
    assert hopping.starts_for(150_000) == [0, 60_000, 120_000]
    assert hopping.max_open() == 4
    with pytest.raises(ValueError):
        WindowSpec(size_ms=100, hop_ms=30, grace_ms=0)


def test_hopping_window_folds_into_every_overlapping_window():
    spec = WindowSpec(size_ms=2 * MINUTE, hop_ms=MINUTE, grace_ms=0)
    result = add_event(None, 90_000, 5.0, spec, watermark=0)
    assert sorted(result.windows) == ["0", "60000"]
    remaining, closed = close_due(result.windows, spec, watermark=2 * MINUTE)
    assert [start for start, _ in closed] == [0]
    assert list(remaining) == ["60000"]


def test_window_closes_only_when_watermark_passes_end_plus_grace():
    _, outputs = run([metric(10_000, 1.0), metric(89_999, 2.0)])
    assert finals(outputs) == []  # watermark 89_999 < 60_000 + 30_000
    _, outputs = run([metric(10_000, 1.0), metric(90_000, 2.0)])
    (window,) = finals(outputs)
    assert (window["start_ms"], window["count"], window["value"]) == (0, 1, 1.0)


def test_late_event_within_grace_is_counted():
    events = [metric(10_000, 1.0), metric(70_000, 5.0), metric(50_000, 3.0), metric(95_000, 0.0)]
    _, outputs = run(events)
    (first,) = [w for w in finals(outputs) if w["start_ms"] == 0]
    assert first["count"] == 2 and first["sum"] == 4.0
    assert not [o for o in outputs if o.topic == "late"]


def test_event_beyond_grace_goes_to_the_late_side_output():
    events = [metric(10_000, 1.0), metric(100_000, 5.0), metric(20_000, 7.0)]
    pipeline, outputs = run(events)
    (late,) = [o.value for o in outputs if o.topic == "late"]
    assert late["event_id"] == events[2].id
    assert late["lateness_ms"] == 80_000
    (first,) = [w for w in finals(outputs) if w["start_ms"] == 0]
    assert first["count"] == 1, "a late event never changes an emitted window"
    series = [v for k, v in pipeline.state.series.items() if "|m|" in k and "late" in v]
    assert series[0]["late"] == 1


def test_every_window_is_emitted_exactly_once():
    events = [metric(t * 1000, float(t % 7)) for t in range(0, 3600, 5)]
    _, outputs = run(events, flush=True)
    starts = Counter(w["start_ms"] for w in finals(outputs))
    assert set(starts.values()) == {1}
    assert sorted(starts) == list(range(0, 3600_000, MINUTE))
    assert sum(w["count"] for w in finals(outputs)) == len(events)


def test_state_stays_bounded_after_ten_thousand_closed_windows():
    events = [metric(t * 30_000, 1.0) for t in range(20_002)]
    pipeline, outputs = run(events)
    assert len(finals(outputs)) >= 10_000
    (state,) = [v for k, v in pipeline.state.series.items() if "|m|" in k and "open" in v]
    assert len(state["open"]) <= SETTINGS_SPEC.max_open()
    assert len(pipeline.state.series) == 3, "series, detector, watermark: no growth"
    assert len(pipeline.state.clock) == 1, "the partition clock"
    assert len(pipeline.schedule(0, "metrics")) <= SETTINGS_SPEC.max_open() * 2


def test_any_interleaving_within_grace_gives_the_same_windows():
    base = [
        metric(t * 1000, float((t * 37) % 11), s) for t in range(0, 1800, 3) for s in ("a", "b")
    ]
    _, reference = run(base, flush=True)
    expected = sorted((w["series"], w["start_ms"], w["count"], w["sum"]) for w in finals(reference))
    rng = random.Random(5)
    for _ in range(5):
        # Shuffle within blocks of 20 s: disorder stays inside the 30 s grace period.
        shuffled = []
        for block in range(0, len(base), 13):
            chunk = base[block : block + 13]
            rng.shuffle(chunk)
            shuffled.extend(chunk)
        _, outputs = run(shuffled, flush=True)
        got = sorted((w["series"], w["start_ms"], w["count"], w["sum"]) for w in finals(outputs))
        assert got == expected


def test_restart_rebuilds_the_close_schedule_from_state():
    events = [metric(t * 7_000, float(t % 5)) for t in range(200)]
    _, uninterrupted = run(events)
    state = PipelineState()
    first = Pipeline(SETTINGS, state)
    _, before = run(events[:90], pipeline=first)
    restarted = Pipeline(SETTINGS, state)  # fresh process: schedules rebuilt from the tables
    outputs = list(before)
    for event in events[90:]:
        step = restarted.process(event, 0)
        step.commit()
        outputs.extend(step.outputs)
    assert finals(outputs) == finals(uninterrupted)
    assert state.series[watermark_key("metrics")]["wm"] == events[-1].ts_ms


def test_outputs_are_not_applied_to_state_until_commit():
    pipeline = Pipeline(SETTINGS)
    step = pipeline.process(metric(10_000, 1.0), 0)
    assert pipeline.state.series == {}
    step.commit()
    assert watermark_key("metrics") in pipeline.state.series


def test_batches_give_the_same_outputs_and_state_as_single_events():
    events = [metric(t * 7_000, float(t % 9)) for t in range(300)]
    single, expected = run(events)
    batched = Pipeline(SETTINGS)
    outputs = []
    for start in range(0, len(events), 64):
        batch = Batch(batched.state)
        for event in events[start : start + 64]:
            batch.begin_event()
            outputs.extend(batched.process(event, 0, batch).outputs)
        for staged in batch.for_partition(0):
            staged.commit()
    assert [o.value for o in outputs] == [o.value for o in expected]
    assert dict(batched.state.series) == dict(single.state.series)


def test_a_failed_event_is_rolled_back_without_losing_the_batch():
    pipeline = Pipeline(SETTINGS)
    batch = Batch(pipeline.state)
    batch.begin_event()
    pipeline.process(metric(10_000, 1.0), 0, batch)
    batch.begin_event()
    pipeline.process(metric(20_000, 2.0), 0, batch)
    batch.rollback_event()  # as the agent does when processing raises
    for staged in batch.for_partition(0):
        staged.commit()
    assert pipeline.state.entities["service:payments"]["events"] == 1
