"""Through the real broker: every fixture reaches `vigil.events` from its raw topic, and
malformed records on every raw topic reach `vigil.deadletter` with their exact offsets."""

from __future__ import annotations

import base64
from collections import Counter

import pytest

from app.replay import file_family
from app.sources.files import file_records
from app.sources.normalize import Normalizer
from app.topics import RAW_FAMILIES
from tests.fixture_counts import FIXTURE_EVENT_COUNTS

pytestmark = pytest.mark.integration

MALFORMED = (b'{"truncated": ', b'{"hello": "world"}', b"\xc3\x28 invalid utf-8")


def test_every_fixture_and_every_bad_record_lands(workers, fixtures_dir):
    normalizer = Normalizer()
    produced: dict[str, list[bytes]] = {family: [] for family in RAW_FAMILIES}
    expected_ids: Counter[str] = Counter()
    for name in sorted(FIXTURE_EVENT_COUNTS):
        path = fixtures_dir / name
        family = file_family(path)
        assert family is not None, name
        for _, raw in file_records(path):
            produced[family].append(raw)
            expected_ids.update(e.id for e in normalizer.normalize(raw, family=family))
    assert sum(expected_ids.values()) == sum(FIXTURE_EVENT_COUNTS.values())
    for family in RAW_FAMILIES:
        produced[family].extend(MALFORMED)
        workers.produce(workers.topic(f"raw:{family}"), produced[family])

    worker = workers.start()
    total = sum(expected_ids.values())
    events = workers.collect(workers.topic("events"), count=total, worker=worker)
    assert Counter(r["value"]["id"] for r in events) == expected_ids, worker.log_tail()
    assert all(r["key"] == r["value"]["entity"] for r in events)

    bad_count = len(MALFORMED) * len(RAW_FAMILIES)
    dead = workers.collect(workers.topic("deadletter"), count=bad_count, worker=worker)
    assert len(dead) == bad_count
    raw_by_position = {
        (r["topic"], r["partition"], r["offset"]): r
        for family in RAW_FAMILIES
        for r in workers.collect_raw(workers.topic(f"raw:{family}"), len(produced[family]))
    }
    codes: Counter[str] = Counter()
    for record in dead:
        value = record["value"]
        position = (value["source_topic"], value["partition"], value["offset"])
        assert position in raw_by_position, position
        assert base64.b64decode(value["raw_b64"]) == raw_by_position[position]["value"]
        assert base64.b64decode(value["raw_b64"]) in MALFORMED
        codes[value["error_code"]] += 1
    assert codes == {
        "malformed_json": len(RAW_FAMILIES),
        "unknown_format": len(RAW_FAMILIES),
        "invalid_utf8": len(RAW_FAMILIES),
    }
