"""Through the real broker: Falco fixtures reach `vigil.events`; bad records the dead letters."""

from __future__ import annotations

import base64

import pytest

from app.sources.files import file_records
from app.sources.normalize import Normalizer

pytestmark = pytest.mark.integration

FALCO_FILES = ("falco-0.31.1-host-alerts.jsonl", "falco-test-single_rule_with_cat_write.jsonl")
MALFORMED = (b'{"rule": "Write below etc", "priority": "Err', b"\xff\xfe\x00 not utf-8")


def test_falco_fixtures_reach_events_and_bad_records_the_dead_letters(workers, fixtures_dir):
    raws = [raw for name in FALCO_FILES for _, raw in file_records(fixtures_dir / "falco" / name)]
    expected = {e.id: e for raw in raws for e in Normalizer().normalize(raw, family="falco")}
    assert len(expected) == 223

    raw_topic = workers.topic("raw:falco")
    workers.produce(raw_topic, [*raws, *MALFORMED])
    worker = workers.start()

    events = workers.collect(workers.topic("events"), count=len(expected), worker=worker)
    got = {record["value"]["id"]: record for record in events}
    assert set(got) == set(expected), worker.log_tail()
    for event_id, record in got.items():
        assert record["key"] == expected[event_id].entity
        assert record["value"]["time"] == expected[event_id].time

    dead = workers.collect(workers.topic("deadletter"), count=2, worker=worker)
    assert sorted(d["value"]["error_code"] for d in dead) == ["invalid_utf8", "malformed_json"]
    originals = {base64.b64decode(d["value"]["raw_b64"]) for d in dead}
    assert originals == set(MALFORMED)
    for d in dead:
        assert d["value"]["source_topic"] == raw_topic
        assert isinstance(d["value"]["offset"], int)
        assert d["value"]["message"]

    assert len(got) == len(events), "an event id arrived twice"
