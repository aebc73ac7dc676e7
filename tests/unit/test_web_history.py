"""The display history behind the dashboard's charts (app/web/history.py): bounded, fed by
outputs, and never more than its bounds whatever the traffic."""

from __future__ import annotations

import asyncio

from app.model.outputs import Output
from app.web.history import History, HistoryBounds, expected_band
from app.web.live_views import (
    CHUNK,
    REBUILD_S,
    LiveIndex,
    alert_projection,
    entity_projection,
    entity_summary,
)

MIN = 60_000


def window(series: str, start: int, value: float, kind: str = "metric") -> Output:
    entity, _, name = series.split("|", 2)
    return Output(
        "windows",
        series,
        {
            "series": series,
            "entity": entity,
            "kind": kind,
            "name": name,
            "start_ms": start,
            "value": value,
        },
    )


def anomaly(series: str, start: int, value: float, kind: str = "metric") -> Output:
    entity, _, name = series.split("|", 2)
    return Output(
        "anomalies",
        series,
        {
            "series": series,
            "entity": entity,
            "kind": kind,
            "name": name,
            "value": value,
            "window_start": "1970-01-01T00:00:00.000Z" if start == 0 else start,
            "time": start + MIN,
            "expected": [1.0, 2.0],
            "score": 0.97,
            "explanation": "spike",
        },
    )


def test_windows_bands_and_anomalies_per_series():
    history = History()
    key = "svc:a|m|latency"
    outputs = [window(key, i * MIN, 1.5) for i in range(5)] + [window(key, 5 * MIN, 9.0)]
    outputs.append(anomaly(key, 5 * MIN, 9.0))
    history.record(outputs, 0, band_of=lambda series, kind: (1.0, 2.0))
    (series,) = history.anomalous_series()
    assert series["series"] == key and series["kind"] == "metric" and series["anomalies"] == 1
    assert [p[0] for p in series["points"]] == [i * MIN for i in range(6)]
    assert series["points"][-1] == [5 * MIN, 9.0, 1.0, 2.0, 0.97]
    assert all(p[4] is None for p in series["points"][:-1])
    # A window sent again after a crash replaces its point, it does not add one.
    history.record([window(key, 5 * MIN, 9.0)], 0)
    assert len(history.series_of(key)["points"]) == 6


def test_bounds_hold_and_anomalous_series_are_kept_apart():
    bounds = HistoryBounds(series_points=3, max_series=2, max_anomalous=1, rate_buckets=4)
    history = History(bounds)
    history.record([anomaly("e|m|hot", 0, 5.0)], 0)
    for i in range(10):  # a flood of quiet series cannot push the anomalous one out
        history.record([window(f"e{i}|m|quiet", j * MIN, 1.0) for j in range(5)], 0)
    assert len(history.series) == 2 and len(history.anomalous) == 1
    assert all(len(s["points"]) == 3 for s in history.series.values())
    assert history.series_of("e|m|hot") is not None
    for second in range(100):
        history.count("falco", second * 1000)
    assert len(history.rates) == 4


def test_rates_per_second_per_source_and_alerts():
    history = History(HistoryBounds(bucket_ms=10_000))
    for i in range(50):
        history.count("falco", 1_000_000 + i * 100)  # 50 events in 5 s: one bucket
    history.record([Output("alerts", "fp", {"id": "a"})] * 20, 1_000_000)
    rates = history.rate_series(1_010_000, minutes=1)
    assert rates["times"][-2] == 1_000_000 and len(rates["times"]) == 6
    assert rates["sources"]["falco"][-2] == 5.0
    assert rates["sources"]["~alerts"][-2] == 2.0


def test_risk_points_and_drift():
    history = History()
    for minute, score in enumerate((10, 40, 70)):
        value = {
            "entity": "payments",
            "entity_type": "service",
            "score": score,
            "time": f"2026-01-01T00:0{minute}:00Z",
            "contributions": [{"factor": "findings", "points": score}],
        }
        history.record([Output("risk", "payments", value)], 0)
    points = history.risk_of("payments")
    assert [p[1] for p in points] == [10, 40, 70]
    assert points[-1][2] == {"findings": 70}
    drift = {"resource": "tf:x", "status": "drifted", "actor": {"user": "bob"}, "paths": ["ami"]}
    history.record([Output("drift", "tf:x", drift)], 0)
    assert history.drift["tf:x"]["actor"] == {"user": "bob"}


def test_expected_band_from_detector_state():
    assert expected_band("rate", None) is None
    assert expected_band("rate", {"n": 0, "mean": 0.0, "var": 0.0}) is None
    low, high = expected_band("rate", {"n": 30, "mean": 4.0, "var": 4.0})
    assert low == 0.0 and high == 10.0
    assert expected_band("metric", {"lo": 1.0, "hi": 3.0}) == (1.0, 3.0)
    assert expected_band("metric", {"lo": float("inf"), "hi": 3.0}) is None


def test_clocks_and_lag():
    history = History(HistoryBounds(rate_buckets=3))
    history.clock(2, {"clock": 5, "wm": 9, "src": {"t.falco": [9, 100]}})
    assert history.clocks[2] == {"clock": 5, "watermark": 9, "sources": {"t.falco": 9}}
    for i in range(5):
        history.sample_lag(100 - i, i * 10_000)
    assert history.lag_series() == [[20_000, 98], [30_000, 97], [40_000, 96]]


def test_live_index_follows_writes_once_built():
    now = [0.0]
    index = LiveIndex(alert_projection, clock=lambda: now[0])
    alert = {
        "t": "alert",
        "status": "firing",
        "fp": "f1",
        "labels": {"alertname": "x"},
        "annotations": {"fixed_version": "2", "description": "long"},
        "pend": [1] * 50,
    }
    index.apply([("e|f0", False, alert)])  # not built yet: the rebuild reads the table
    assert index.stale and not index.items
    index.rebuild([("e|f1", alert), ("e|~scope|s", {"t": "scope"}), ("~wm", {})])
    assert list(index.items) == ["e|f1"] and not index.stale
    assert index.items["e|f1"]["annotations"] == {"fixed_version": "2"}
    assert "pend" not in index.items["e|f1"]
    index.apply([("e|f2", False, {**alert, "fp": "f2"}), ("e|f1", True, None)])
    assert list(index.items) == ["e|f2"]
    index.apply([("e|f2", False, {**alert, "status": None})])  # no longer an instance
    assert not index.items
    now[0] = REBUILD_S + 1
    assert index.stale
    index.rebuild([])
    index.invalidate()
    assert index.stale and not index.items
    entities = LiveIndex(entity_projection)
    entities.rebuild(
        [(f"e{i}", {"entity": f"e{i}", "events": i, "last_ts_ms": i}) for i in range(5)]
    )
    summary = entity_summary(entities, 2)
    assert summary["count"] == 5 and summary["events"] == 10
    assert [e["entity"] for e in summary["recent"]] == ["e4", "e3"]


def test_writes_captured_before_a_page_builds_the_index_are_applied_after_it():
    """The agent captures a batch's writes, waits for the broker, a page builds the index
    from the table meanwhile (without them), then the captured writes are applied."""
    from agents import history as agent_history
    from app.runtime.staged import StagedState

    index = LiveIndex(entity_projection)
    staged = StagedState({})
    staged["svc:a"] = {"entity": "svc:a", "events": 1, "last_ts_ms": 5}

    class Batch:
        def tables_of(self, partition):
            return {"entities": staged}

    original = agent_history._FOLLOWED
    agent_history._FOLLOWED = (("entities", index),)
    try:
        captured = agent_history.capture(Batch(), [0])
        index.rebuild([])  # the page's scan, before the commit
        agent_history.record_process({}, {}, [], {}, {}, captured)
    finally:
        agent_history._FOLLOWED = original
    assert list(index.items) == ["svc:a"]


async def test_a_chunked_rebuild_lets_the_loop_run_and_replays_writes_made_during_it():
    """Other tasks (requests, the agent) run between chunks; a write applied while the scan
    is under way wins over the value the scan read; the old index serves until the end."""
    index = LiveIndex(entity_projection)
    index.rebuild([("old", {"entity": "old", "events": 1})])
    table = {f"e{i}": {"entity": f"e{i}", "events": i} for i in range(5 * CHUNK)}
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            if turns == 2:  # during the scan: a write to a key already read, and a delete
                index.apply([("e0", False, {"entity": "e0", "events": 99}), ("e1", True, None)])
                assert "old" in index.items  # the index in hand still serves
            await asyncio.sleep(0)

    other = asyncio.ensure_future(other_work())
    assert await index.rebuild_chunked(table.items())
    other.cancel()
    assert turns >= 4  # at least once between every two chunks
    assert "old" not in index.items and "e1" not in index.items
    assert index.items["e0"]["events"] == 99 and len(index.items) == 5 * CHUNK - 1
    index.apply([("e2", False, {"entity": "e2", "events": 7})])  # followed again after it
    assert index.items["e2"]["events"] == 7


async def test_a_chunked_rebuild_begun_before_partitions_moved_is_dropped():
    index = LiveIndex(entity_projection)
    table = {f"e{i}": {"entity": f"e{i}", "events": i} for i in range(3 * CHUNK)}

    async def move_partitions() -> None:
        await asyncio.sleep(0)
        index.invalidate()

    moved = asyncio.ensure_future(move_partitions())
    assert not await index.rebuild_chunked(table.items())
    await moved
    assert index.built_at is None and not index.items
