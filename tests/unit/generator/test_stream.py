"""`vigil generate`: a deterministic stream of every source family, in each tool's raw format."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from app.generator.stream import RawRecord, TelemetryGenerator
from app.sources.errors import NormalizeError
from app.sources.normalize import Normalizer
from app.topics import RAW_FAMILIES

START_MS = 1_609_459_200_000  # 2021-01-01T00:00:00Z: far from today, so a wall-clock leak shows
RATE = 500.0
COUNT = 20_000
#: Several formats carry whole seconds only (CloudTrail, GitHub, GitLab, Terraform).
SECOND_PRECISION_MS = 1000


def _digest(records: list[RawRecord]) -> str:
    digest = hashlib.sha256()
    for record in records:
        digest.update(f"{record.family}|{record.ts_ms}|{record.malformed}|".encode())
        digest.update(record.value)
        digest.update(b"\x00")
    return digest.hexdigest()


@pytest.fixture(scope="module")
def records() -> list[RawRecord]:
    return list(TelemetryGenerator(seed=7).records(START_MS, RATE, COUNT))


@pytest.fixture(scope="module")
def normalized(records):
    """(record, events or the NormalizeError) for every generated record."""
    normalizer = Normalizer()
    out = []
    for record in records:
        try:
            out.append((record, normalizer.normalize(record.value, family=record.family)))
        except NormalizeError as exc:
            out.append((record, exc))
    return out


def test_same_seed_start_and_rate_give_identical_bytes(records):
    again = list(TelemetryGenerator(seed=7).records(START_MS, RATE, COUNT))
    assert _digest(again) == _digest(records)
    other = list(TelemetryGenerator(seed=8).records(START_MS, RATE, 2_000))
    assert _digest(other) != _digest(records[:2_000])


def test_record_at_is_deterministic_when_times_repeat():
    """Live mode calls record_at with the same `now` many times in a row."""
    first, second = TelemetryGenerator(seed=3), TelemetryGenerator(seed=3)
    times = [START_MS + (i // 50) * 1000 for i in range(3_000)]
    assert [first.record_at(t) for t in times] == [second.record_at(t) for t in times]


def test_event_times_follow_the_requested_spacing(records):
    assert [r.ts_ms for r in records[:5]] == [START_MS + i * 2 for i in range(5)]


def test_every_family_appears(records):
    counts = Counter(r.family for r in records if not r.malformed)
    assert set(counts) == set(RAW_FAMILIES)
    assert counts.most_common(2)[0][0] in ("metrics", "logs")
    assert counts["terraform"] < counts["ci"] < counts["k8s-audit"] < counts["logs"]


def test_every_wellformed_record_normalizes(normalized):
    failures = [
        (record.family, exc.code.value, exc.message, record.value[:300])
        for record, exc in normalized
        if not record.malformed and isinstance(exc, NormalizeError)
    ]
    assert failures == []
    assert all(events for record, events in normalized if not record.malformed)


def test_malformed_records_fail_to_normalize(normalized):
    malformed = [(record, result) for record, result in normalized if record.malformed]
    assert 30 <= len(malformed) <= 200  # bad_ratio 0.005 of 20,000
    assert all(isinstance(result, NormalizeError) for _, result in malformed)
    assert len({result.code for _, result in malformed}) >= 4


def test_no_malformed_records_when_bad_ratio_is_zero():
    generator = TelemetryGenerator(seed=7, bad_ratio=0.0)
    assert not any(r.malformed for r in generator.records(START_MS, RATE, 5_000))


def test_event_times_are_the_record_times(normalized):
    """Every event's time comes from the record's ts_ms (never the wall clock)."""
    offsets = Counter()
    for record, events in normalized:
        if record.malformed:
            continue
        for event in events:
            offset = record.ts_ms - event.ts_ms
            assert 0 <= offset < SECOND_PRECISION_MS, (record.family, event.source, offset)
            offsets[event.source] = max(offsets[event.source], offset)
    for source in ("falco", "metrics", "fluentbit", "k8s-audit", "alertmanager", "trivy"):
        assert offsets[source] == 0, source


def test_the_stream_covers_each_scenario(normalized):
    events = [e for record, result in normalized if not record.malformed for e in result]
    types = Counter((e.source, e.type) for e in events)
    for expected in (
        ("trivy", "vulnerability"),
        ("trivy", "scan_completed"),
        ("sarif", "scan_completed"),
        ("github", "ci_run"),
        ("github", "ci_job"),
        ("gitlab", "ci_run"),
        ("terraform", "tf_change"),
    ):
        assert types[expected], expected
    assert any(e.type == "deployment" for e in events)
    assert any(e.type == "tf_drift" for e in events)
    statuses = Counter(e.attributes["status"] for e in events if e.source == "alertmanager")
    assert statuses["firing"] and statuses["resolved"]
    k8s_reasons = Counter(
        reason for e in events if e.source == "k8s-audit" for reason in e.attributes["risk_reasons"]
    )
    assert k8s_reasons["forbidden"] >= 10
    http = Counter(
        (e.attributes["http_status"] or 0) // 100 for e in events if e.source == "fluentbit"
    )
    assert http[2] > 10 * http[5] > 0
    assert any(e.source == "metrics" and e.attributes["labels"].get("job") for e in events)
    failed_security_jobs = [
        e for e in events if e.type in ("ci_run", "ci_job") and e.severity == "high"
    ]
    assert failed_security_jobs
