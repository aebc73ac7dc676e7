"""Through the real broker: Falco alerts are deduplicated into the same notifications the
offline replay prints, and a silence created on the control topic mutes its alerts."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from app.replay import offline_replay
from app.sources.files import file_records

pytestmark = pytest.mark.integration

FALCO = "falco/falco-0.31.1-host-alerts.jsonl"
SILENCED_RULE = "Write below root"


def _silence_command() -> bytes:
    return orjson.dumps(
        {
            "command": "silence.create",
            "silence": {
                "matchers": [f'alertname="{SILENCED_RULE}"'],
                "startsAt": "2022-01-01T00:00:00Z",
                "endsAt": "2023-01-01T00:00:00Z",
                "createdBy": "integration-test",
                "comment": "known noisy rule on this host",
            },
        }
    )


def test_alert_notifications_match_offline_and_silences_mute(workers, fixtures_dir):
    path = fixtures_dir / FALCO
    expected = [
        r["value"]
        for r in offline_replay([path], workers.settings, flush=False)
        if r["topic"].endswith("vigil.alerts")
    ]
    assert expected, "the fixture raises notifications offline"
    silenced = [a for a in expected if a["labels"].get("alertname") == SILENCED_RULE]
    assert silenced, "the rule to silence fires in the fixture"
    expected_live = {a["id"]: a for a in expected if a not in silenced}

    workers.produce(workers.topic("control"), [_silence_command()])
    control_ready = workers.start("control")
    # The silence is applied before any telemetry is produced: wait for its changelog record.
    changelog = f"{workers.settings.app_id}-silences-changelog"
    assert workers.collect(changelog, count=1, worker=control_ready), "silence not stored"

    raws = [raw for _, raw in file_records(path)]
    workers.produce(workers.topic("raw:falco"), raws, key=b"falco.jsonl")
    missing = set(expected_live)

    def all_arrived(record: dict) -> bool:
        missing.discard(record["value"]["id"])
        return not missing

    records = workers.collect(
        workers.topic("alerts"),
        count=len(expected_live) + 20,
        timeout_s=90,
        worker=control_ready,
        stop_when=all_arrived,
    )
    got = Counter(r["value"]["id"] for r in records)
    assert set(got) == set(expected_live), "live and offline notifications differ"
    assert all(r["value"]["labels"].get("alertname") != SILENCED_RULE for r in records)
    for record in records:
        value = record["value"]
        assert value["count"] == expected_live[value["id"]]["count"]
        assert 0 <= value["score"] <= 100 and value["factors"]
    inputs = sum(1 for _ in raws)
    print(f"\ndedup: {inputs} Falco alerts -> {len(expected)} notification records offline")
