"""The `vigil` CLI offline: normalize and replay every real fixture, and report errors cleanly."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from app.cli import main
from app.replay import offline_replay
from app.settings import Settings
from tests.fixture_counts import FIXTURE_EVENT_COUNTS


def _lines(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def test_every_fixture_file_is_pinned(fixtures_dir):
    on_disk = {
        str(p.relative_to(fixtures_dir))
        for p in fixtures_dir.rglob("*")
        if p.is_file() and p.name != "SOURCES.md"
    }
    assert on_disk == set(FIXTURE_EVENT_COUNTS)


@pytest.mark.parametrize(("name", "expected"), sorted(FIXTURE_EVENT_COUNTS.items()))
def test_normalize_every_fixture_without_errors(fixtures_dir, capfdbinary, name, expected):
    status = main(["normalize", str(fixtures_dir / name)])
    out, err = capfdbinary.readouterr()
    assert err == b"", err.decode()
    assert status == 0
    events = _lines(out)
    assert len(events) == expected
    for event in events:
        assert {"id", "source", "type", "time", "entity", "severity", "attributes"} <= set(event)


def test_normalize_reports_each_bad_record_as_one_json_line(tmp_path, capfdbinary):
    path = tmp_path / "mixed.jsonl"
    good = (
        b'{"rule": "r", "priority": "Warning", "output": "o", "time": "2024-01-01T00:00:00Z",'
        b' "hostname": "h"}'
    )
    path.write_bytes(b"\n".join([good, b"{broken", b'{"unknown": "format"}', good]))
    status = main(["normalize", str(path)])
    out, err = capfdbinary.readouterr()
    assert status == 1
    assert len(_lines(out)) == 2
    errors = _lines(err)
    assert [(e["record"], e["error_code"]) for e in errors] == [
        (1, "malformed_json"),
        (2, "unknown_format"),
    ]
    assert b"Traceback" not in err


def test_normalize_unreadable_file_is_an_error_not_a_traceback(tmp_path, capfdbinary):
    status = main(["normalize", str(tmp_path / "missing.json")])
    _, err = capfdbinary.readouterr()
    assert status == 1
    assert _lines(err)[0]["error_code"] == "unreadable"


def test_forced_source_that_does_not_fit_is_reported(fixtures_dir, capfdbinary):
    status = main(["normalize", "--source", "falco", str(fixtures_dir / "trivy" / "pom.json")])
    _, err = capfdbinary.readouterr()
    assert status == 1
    assert _lines(err)[0]["error_code"] == "unknown_format"


@pytest.fixture(scope="module")
def every_fixture_replayed(fixtures_dir) -> list[dict]:
    """`vigil replay --offline` of every fixture file, once for this module."""
    paths = [fixtures_dir / name for name in sorted(FIXTURE_EVENT_COUNTS)]
    return list(offline_replay(paths, Settings()))


def test_offline_replay_accepts_every_fixture(every_fixture_replayed):
    records = every_fixture_replayed
    topics = [r["topic"] for r in records]
    assert "vigil.deadletter" not in topics
    assert topics.count("vigil.events") == sum(FIXTURE_EVENT_COUNTS.values())
    times = [r["value"]["ts_ms"] for r in records if r["topic"] == "vigil.events"]
    assert times == sorted(times), "offline replay processes events in event-time order"


def test_replaying_every_fixture_notifies_and_scores_without_storms(every_fixture_replayed):
    """Issue 22: at most 5 `vigil.alerts` records per fingerprint and 20 `vigil.risk` records
    per subject on average (a finding is notified when it changes, not on every repeat)."""
    alerts = Counter(
        r["value"]["fingerprint"] for r in every_fixture_replayed if r["topic"] == "vigil.alerts"
    )
    risk = Counter(r["key"] for r in every_fixture_replayed if r["topic"] == "vigil.risk")
    assert alerts and risk
    assert sum(alerts.values()) / len(alerts) <= 5, alerts.most_common(5)
    assert sum(risk.values()) / len(risk) <= 20, risk.most_common(5)


def test_offline_replay_of_the_falco_host_capture_prints_215_events(fixtures_dir, capfdbinary):
    path = fixtures_dir / "falco" / "falco-0.31.1-host-alerts.jsonl"
    assert main(["replay", "--offline", str(path)]) == 0
    records = _lines(capfdbinary.readouterr().out)
    assert sum(r["topic"] == "vigil.events" for r in records) == 215
    assert all(r["key"] == r["value"]["entity"] for r in records if r["topic"] == "vigil.events")


def test_silence_add_refuses_what_exceeds_the_bounds(capfdbinary, monkeypatch):
    """Checked before anything is sent (no broker needed): duration and comment size."""
    monkeypatch.setenv("VIGIL_SILENCE_MAX_HOURS", "24")
    for extra in (["--hours", "25"], ["--comment", "x" * 5000]):
        argv = ["silence", "add", "-m", 'alertname="x"', "--by", "me", "--comment", "why"]
        assert main(argv + extra) == 2
        error = orjson.loads(capfdbinary.readouterr().err)
        assert error["error"] == "invalid silence", error
