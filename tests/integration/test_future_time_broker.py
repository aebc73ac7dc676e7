"""Through the real broker: a record stamped in the year 2999 takes no worker down.

With the default skew limit it goes to the dead letters (`future_timestamp`) and never into a
watermark; with the limit off (a backfill) it moves the clocks 973 years at once, and the
worker still answers its liveness probe and processes what comes after it.
"""

from __future__ import annotations

import time
import urllib.request

import orjson
import pytest

from app.model.events import format_time, parse_time

pytestmark = pytest.mark.integration

FUTURE = "2999-01-01T00:00:00Z"
WAIT_S = 120


def falco(host: str, when: str) -> bytes:
    return orjson.dumps(
        {
            "hostname": host,
            "time": when,
            "rule": "Terminal shell in container",
            "priority": "Warning",
            "source": "syscall",
            "output": f"A shell was spawned on {host} (command=bash)",
            "output_fields": {"proc.cmdline": "bash"},
        }
    )


def recent(seconds_ago: int) -> str:
    return format_time(int(time.time() * 1000) - seconds_ago * 1000)


def live_status(port: int) -> int:
    """The liveness probe's status, as Kubernetes asks it (5 s timeout)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5) as response:
        return response.status


def hosts_of(records: list[dict]) -> list[str]:
    return sorted(r["value"]["entity"] for r in records)


def test_a_future_dated_record_is_dead_lettered_and_the_worker_goes_on(workers):
    raws = [falco("h1", recent(120)), falco("h1", FUTURE), falco("h2", recent(60))]
    workers.produce(workers.topic("raw:falco"), raws, key=b"falco")  # one partition, in order
    worker = workers.start()

    dead = workers.collect(workers.topic("deadletter"), count=1, worker=worker, timeout_s=WAIT_S)
    assert dead, f"no dead letter arrived within {WAIT_S} s (late or lost):\n{worker.log_tail()}"
    assert dead[0]["value"]["error_code"] == "future_timestamp"
    assert "2999" in dead[0]["value"]["message"]

    events = workers.collect(workers.topic("events"), count=2, worker=worker, timeout_s=WAIT_S)
    assert hosts_of(events) == ["host:h1", "host:h2"], (
        f"{len(events)} of 2 events after {WAIT_S} s:\n{worker.log_tail()}"
    )
    assert all(not r["value"]["time"].startswith("2999") for r in events)
    assert live_status(worker.web_port) == 200


def test_with_the_skew_check_off_a_record_from_2999_takes_no_worker_down(workers):
    raws = [falco("h1", recent(120)), falco("h1", FUTURE), falco("h1", recent(60))]
    workers.produce(workers.topic("raw:falco"), raws, key=b"falco")  # one partition, in order
    worker = workers.start(VIGIL_MAX_FUTURE_SKEW_MS="0")

    events = workers.collect(workers.topic("events"), count=3, worker=worker, timeout_s=WAIT_S)
    assert len(events) == 3, f"{len(events)} of 3 events after {WAIT_S} s:\n{worker.log_tail()}"
    after = next(r["value"] for r in events if r["value"]["time"] == recent_time(raws[2]))
    # The sighting read after the 2999 record is processed: its windows closed 973 years ago
    # by the watermark, so the process agent reports it late (it got past the jump).
    late = workers.collect(
        workers.topic("late"),
        count=10,
        worker=worker,
        timeout_s=WAIT_S,
        stop_when=lambda r: r["value"]["event_id"] == after["id"],
    )
    assert any(r["value"]["event_id"] == after["id"] for r in late), (
        f"the event after the 2999 record not processed within {WAIT_S} s (late or lost; "
        f"{len(late)} late records: {[r['value'] for r in late]}; events "
        f"{[(r['value']['id'], r['value']['time']) for r in events]}):\n{worker.log_tail()}"
    )
    assert all(r["value"]["watermark"].startswith("2999") for r in late)
    for _ in range(3):
        assert live_status(worker.web_port) == 200


def recent_time(raw: bytes) -> str:
    """The canonical time of a generated Falco record (its `time`, to milliseconds)."""
    return format_time(parse_time(orjson.loads(raw)["time"]))
