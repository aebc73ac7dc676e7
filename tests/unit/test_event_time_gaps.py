"""Gaps in event time cost what is due in them, not their length (issue 26).

Replaying two sightings of one series a month apart emits what a person would expect: each
sighting's alert fires and resolves, its windows close, risk moves a few times; no flood of
empty windows, repeats or heartbeats in between.
"""

from __future__ import annotations

from collections import Counter

import orjson

from app.model.events import format_time, parse_time
from app.replay import offline_replay
from app.settings import Settings

DAY = 24 * 3_600_000
T0 = parse_time("2026-06-01T00:00:00Z")  # + 90 days stays in the past


def falco(host: str, ts_ms: int) -> bytes:
    return orjson.dumps(
        {
            "hostname": host,
            "time": format_time(ts_ms),
            "rule": "Terminal shell in container",
            "priority": "Warning",
            "source": "syscall",
            "output": "A shell was spawned (command=bash)",
            "output_fields": {"proc.cmdline": "bash"},
        }
    )


def metric(ts_ms: int, value: float) -> bytes:
    return orjson.dumps(
        {"name": "cpu_usage", "value": value, "timestamp": ts_ms, "labels": {"service": "api"}}
    )


def replay(tmp_path, name: str, lines: list[bytes]) -> Counter:
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    records = list(offline_replay([path], Settings.from_env({})))
    kinds: Counter = Counter()
    for record in records:
        value = record["value"]
        detail = value.get("notification") or value.get("reason") or value.get("kind")
        kinds[(record["topic"].removeprefix("vigil."), detail)] += 1
    return kinds


def test_two_falco_alerts_a_month_apart(tmp_path):
    kinds = replay(tmp_path, "falco.jsonl", [falco("h1", T0), falco("h1", T0 + 30 * DAY)])
    assert kinds[("alerts", "firing")] == 2 and kinds[("alerts", "resolved")] == 2, kinds
    assert kinds[("alerts", "repeat")] == 0
    windows = sum(n for (topic, _), n in kinds.items() if topic == "windows")
    assert windows <= 8, kinds  # each sighting's windows, not a month of empty ones
    assert kinds[("risk_signals", "tick")] <= 2 * 3 * 4, kinds  # MAX_RISK_TICKS per jump
    risk = sum(n for (topic, _), n in kinds.items() if topic == "risk")
    assert 1 <= risk <= 40, kinds
    assert sum(kinds.values()) < 150, kinds


def test_a_metric_series_with_a_three_month_gap(tmp_path):
    lines = [metric(T0 + n * 60_000, 50.0 + n % 3) for n in range(30)]
    later = T0 + 90 * DAY
    lines += [metric(later + n * 60_000, 50.0 + n % 3) for n in range(30)]
    kinds = replay(tmp_path, "metrics.jsonl", lines)
    assert sum(n for (topic, _), n in kinds.items() if topic == "events") == 60, kinds
    windows = sum(n for (topic, _), n in kinds.items() if topic == "windows")
    assert windows <= 2 * 62, kinds  # one per minute of data, none for the empty months
    assert sum(kinds.values()) < 400, kinds
