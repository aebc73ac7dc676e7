"""Alertmanager webhooks normalize to one prom_alert per alert, with Alertmanager's fingerprint."""

from __future__ import annotations

import orjson
import pytest

from app.model.fingerprints import alertmanager_fingerprint
from app.sources.alertmanager import strip_port
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.normalize import Normalizer

ALERTMANAGER_FILES = {
    "prometheus-msteams-1-alert.json": 1,
    "prometheus-msteams-2-alerts.json": 2,
    "prometheus-msteams-large-19-alerts.json": 19,
}


def _normalize(payload: dict) -> list:
    return Normalizer().normalize(orjson.dumps(payload), family="alertmanager")


def _payload(**alert_fields) -> dict:
    alert = {
        "labels": {"alertname": "HighLatency", "instance": "web-1:9100", "severity": "critical"},
        "annotations": {"summary": "p99 over 2s"},
        "startsAt": "2024-05-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        **alert_fields,
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "status": "firing",
        "receiver": "ops",
        "externalURL": "http://am:9093",
        "alerts": [alert],
    }


@pytest.mark.parametrize(("name", "expected"), sorted(ALERTMANAGER_FILES.items()))
def test_every_alertmanager_sample_normalizes(fixtures_dir, name, expected):
    normalizer = Normalizer()
    events = []
    for _, raw in file_records(fixtures_dir / "alertmanager" / name):
        events.extend(normalizer.normalize(raw, family="alertmanager"))
    assert len(events) == expected
    assert all(e.source == "alertmanager" and e.type == "prom_alert" for e in events)
    assert len({e.id for e in events}) == expected, "event ids must be unique per alert"
    assert len({e.attributes["fingerprint"] for e in events}) == expected


def test_fixture_alert_fields(fixtures_dir):
    raw = next(file_records(fixtures_dir / "alertmanager" / "prometheus-msteams-1-alert.json"))[1]
    (event,) = Normalizer().normalize(raw, family="alertmanager")
    assert event.time == "2018-03-07T11:33:21.873Z"  # startsAt -05:00 in UTC
    assert event.entity == "service:docker_nodes"  # labels.job
    assert event.severity == "medium"  # severity="warning"
    attrs = event.attributes
    assert attrs["alertname"] == "high_memory_load"
    assert attrs["status"] == "firing"  # from the payload: the alert has no status of its own
    assert attrs["ends_at"] is None  # Go zero time
    assert attrs["group_key"] == '{}:{alertname="high_memory_load"}'
    assert attrs["receiver"] == "teams_proxy"
    assert attrs["external_url"] == "http://docker.for.mac.host.internal:9093"
    assert attrs["fingerprint"] == alertmanager_fingerprint(attrs["labels"])


def test_large_fixture_pages_are_critical_services(fixtures_dir):
    path = fixtures_dir / "alertmanager" / "prometheus-msteams-large-19-alerts.json"
    events = Normalizer().normalize(next(file_records(path))[1], family="alertmanager")
    assert {e.severity for e in events} == {"critical"}  # severity="page"
    assert events[0].entity == "service:infrastructurevmenvironmentcuser3cne1"


def test_entity_falls_back_to_host_then_alertname():
    (event,) = _normalize(_payload())
    assert event.entity == "host:web-1"
    assert event.severity == "critical"
    (event,) = _normalize(_payload(labels={"alertname": "Watchdog", "severity": "none"}))
    assert event.entity == "alert:Watchdog"
    assert event.severity == "info"


def test_resolved_alert_takes_its_end_time_and_own_status():
    payload = _payload(status="resolved", endsAt="2024-05-01T10:05:00Z")
    (event,) = _normalize(payload)
    assert event.attributes["status"] == "resolved"  # per-alert status beats the payload's
    assert event.time == "2024-05-01T10:05:00.000Z"
    assert event.attributes["starts_at"] == "2024-05-01T10:00:00.000Z"
    assert event.attributes["ends_at_ms"] == event.ts_ms
    (firing,) = _normalize(_payload())
    assert firing.id != event.id
    assert firing.attributes["fingerprint"] == event.attributes["fingerprint"]


def test_firing_resend_with_moving_ends_at_keeps_its_id():
    (a,) = _normalize(_payload(endsAt="2024-05-01T10:04:00Z"))
    (b,) = _normalize(_payload(endsAt="2024-05-01T10:08:00Z"))
    assert a.id == b.id
    assert a.time == "2024-05-01T10:00:00.000Z"  # firing: startsAt


def test_payload_fingerprint_and_generator_url_are_used():
    (event,) = _normalize(_payload(fingerprint="0123456789abcdef", generatorURL="http://p/g"))
    assert event.attributes["fingerprint"] == "0123456789abcdef"
    assert event.attributes["generator_url"] == "http://p/g"


def test_long_annotations_are_truncated():
    (event,) = _normalize(_payload(annotations={"description": "x" * 5000}))
    assert len(event.attributes["annotations"]["description"]) == 1024


@pytest.mark.parametrize(
    ("address", "host"),
    [("web-1:9100", "web-1"), ("10.0.0.1:80", "10.0.0.1"), ("[::1]:9090", "::1"), ("::1", "::1")],
)
def test_strip_port(address, host):
    assert strip_port(address) == host


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"version": "4", "alerts": "x"}, ErrorCode.WRONG_TYPE),
        ({"version": "4", "status": "firing", "alerts": []}, ErrorCode.EMPTY),
        ({"version": "4", "status": "firing", "alerts": [1]}, ErrorCode.WRONG_TYPE),
        (_payload(labels=None), ErrorCode.MISSING_FIELD),
        (_payload(labels={"alertname": 1}), ErrorCode.WRONG_TYPE),
        (_payload(startsAt=None), ErrorCode.MISSING_FIELD),
        (_payload(startsAt="yesterday"), ErrorCode.INVALID_VALUE),
        (_payload(startsAt="1e300"), ErrorCode.INVALID_VALUE),
        (_payload(startsAt=1714557600), ErrorCode.WRONG_TYPE),
        (_payload(status="pending"), ErrorCode.INVALID_VALUE),
        ({**_payload(), "status": None}, ErrorCode.MISSING_FIELD),
        ({"hello": "world"}, ErrorCode.UNKNOWN_FORMAT),
    ],
)
def test_bad_alertmanager_payloads_fail_with_a_code(payload, code):
    with pytest.raises(NormalizeError) as info:
        _normalize(payload)
    assert info.value.code == code
