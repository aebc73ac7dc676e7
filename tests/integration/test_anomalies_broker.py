"""Through the real broker: an injected metric spike and a Falco burst raise anomalies on
`vigil.anomalies` for exactly those series, and offline replay shows the same anomalies."""

from __future__ import annotations

import random

import orjson
import pytest

from app.model.events import Event, format_time
from app.model.outputs import Origin
from app.pipeline import Pipeline

pytestmark = pytest.mark.integration

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOURS = 5
SPIKE_SERVICE, BURST_HOST = "svc2", "node-b"
SPIKE_AT_MS = START_MS + 250 * 60_000
BURST_AT_MS = START_MS + 240 * 60_000


def metric_records() -> list[tuple[int, bytes]]:
    rng = random.Random(11)
    records = []
    for i in range(HOURS * 180):  # one sample per 20 s per service
        ts = START_MS + i * 20_000
        for service in ("svc0", "svc1", "svc2", "svc3"):
            value = 120.0 + rng.gauss(0, 4)
            if service == SPIKE_SERVICE and SPIKE_AT_MS <= ts < SPIKE_AT_MS + 60_000:
                value *= 6
            sample = {
                "name": "http_requests_per_second",
                "labels": {"service": service},
                "value": round(value, 3),
                "timestamp": ts,
            }
            records.append((ts, orjson.dumps(sample)))
    return records


def falco_records() -> list[tuple[int, bytes]]:
    rng = random.Random(12)
    records = []
    for host in ("node-a", "node-b", "node-c", "node-d"):
        ts = START_MS
        while ts < START_MS + HOURS * 3_600_000:
            ts += int(rng.expovariate(1 / 180_000))
            records.append((ts, _alert(host, ts)))
    records += [
        (BURST_AT_MS + k * 700, _alert(BURST_HOST, BURST_AT_MS + k * 700)) for k in range(80)
    ]
    return sorted(records)


def _alert(host: str, ts: int) -> bytes:
    return orjson.dumps(
        {
            "hostname": host,
            "rule": "Terminal shell in container",
            "priority": "Notice",
            "output": f"shell in container on {host} at {ts}",
            "source": "syscall",
            "time": format_time(ts),
            "output_fields": {"container.id": "abc", "proc.cmdline": "bash"},
        }
    )


def offline_anomalies(streams: dict[str, list[bytes]], settings) -> dict[str, dict]:
    events = []
    for family, raws in streams.items():
        for index, raw in enumerate(raws):
            for out in Pipeline(settings).ingest(raw, family, Origin(family, 0, index)):
                events.append(Event.from_dict(out.value))
    events.sort(key=lambda e: (e.ts_ms, e.id))
    pipeline = Pipeline(settings)
    found = {}
    for event in events:
        step = pipeline.process(event)
        step.commit()
        found.update({o.value["id"]: o.value for o in step.outputs if o.topic == "anomalies"})
    return found


def test_spike_and_burst_raise_anomalies_on_exactly_those_series(workers):
    streams = {
        "metrics": [raw for _, raw in metric_records()],
        "falco": [raw for _, raw in falco_records()],
    }
    expected = offline_anomalies(streams, workers.settings)
    entities = {a["entity"] for a in expected.values()}
    assert entities == {f"service:{SPIKE_SERVICE}", f"host:{BURST_HOST}"}, sorted(
        (a["series"], a["time"], a["score"]) for a in expected.values()
    )
    names = {a["name"] for a in expected.values()}
    assert names == {
        "falco_alerts",
        "events:runtime_alert",
        f'http_requests_per_second{{service="{SPIKE_SERVICE}"}}',
    }

    for family, raws in streams.items():
        workers.produce(workers.topic(f"raw:{family}"), raws, key=family.encode())
    worker = workers.start()
    missing = set(expected)

    def all_arrived(record: dict) -> bool:
        missing.discard(record["value"]["id"])
        return not missing

    records = workers.collect(
        workers.topic("anomalies"),
        count=len(expected) + 50,
        timeout_s=90,
        worker=worker,
        stop_when=all_arrived,
    )
    got = {r["value"]["id"]: r["value"] for r in records}
    assert set(got) == set(expected)
    for anomaly_id, anomaly in got.items():
        assert anomaly["score"] == expected[anomaly_id]["score"]
        assert anomaly["value"] == expected[anomaly_id]["value"]
        assert 0.0 <= anomaly["score"] <= 1.0 and anomaly["explanation"]
