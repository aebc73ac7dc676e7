"""Through the real broker: closed windows match the offline replay, and a worker killed with
SIGKILL mid-stream and restarted neither loses a closed window nor changes one."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from app.model.events import Event
from app.model.outputs import Origin
from app.pipeline import Pipeline

pytestmark = pytest.mark.integration

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SERVICES = [f"svc{i}" for i in range(8)]


def metric_samples(count_per_series: int, step_ms: int = 10_000) -> list[bytes]:
    """A steady metric stream in event-time order, one sample per series per step."""
    samples = []
    for i in range(count_per_series):
        for n, service in enumerate(SERVICES):
            sample = {
                "name": "http_request_latency_ms",
                "labels": {"service": service},
                "value": 100.0 + (i * 7 + n * 13) % 17,
                "timestamp": START_MS + i * step_ms,
            }
            samples.append(orjson.dumps(sample))
    return samples


def offline_windows(raws: list[bytes], settings) -> dict[str, dict]:
    """Windows the pipeline closes for these records, processed in order without Kafka."""
    pipeline = Pipeline(settings)
    windows: dict[str, dict] = {}
    for index, raw in enumerate(raws):
        (out,) = pipeline.ingest(raw, "metrics", Origin("t", 0, index))
        step = pipeline.process(Event.from_dict(out.value))
        step.commit()
        windows.update({o.value["id"]: o.value for o in step.outputs if o.topic == "windows"})
    return windows


def _comparable(window: dict) -> tuple:
    return (window["series"], window["start_ms"], window["count"], window["sum"])


def test_windows_survive_a_kill_and_restart(workers):
    raws = metric_samples(count_per_series=1500)  # 12,000 samples, 250 min per series
    expected = offline_windows(raws, workers.settings)
    metric_windows = {k: v for k, v in expected.items() if v["kind"] == "metric"}
    assert len(metric_windows) > 1900

    # One key: the whole stream stays in one raw partition, in order (as `vigil replay` does).
    workers.produce(workers.topic("raw:metrics"), raws, key=b"metrics.jsonl")
    first = workers.start("w1")
    seen = workers.collect(workers.topic("windows"), count=400, worker=first)
    assert len(seen) == 400
    first.kill()

    second = workers.start("w1b", APP_DATADIR=first.env["APP_DATADIR"])
    missing = set(expected)

    def all_arrived(record: dict) -> bool:
        missing.discard(record["value"]["id"])
        return not missing

    records = workers.collect(
        workers.topic("windows"),
        count=len(expected) + 400,
        timeout_s=120,
        worker=second,
        stop_when=all_arrived,
    )
    ids = Counter(r["value"]["id"] for r in records)
    assert set(ids) == set(expected), f"lost {len(set(expected) - set(ids))} windows"
    for record in records:
        assert _comparable(record["value"]) == _comparable(expected[record["value"]["id"]])
    repeats = sum(count - 1 for count in ids.values())
    print(f"\nwindows: {len(expected)} expected, {len(records)} records, {repeats} repeated ids")
