"""Falco alerts normalize to one runtime_alert each, keyed by host, with the alert's own time."""

from __future__ import annotations

import orjson
import pytest

from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.normalize import Normalizer

FALCO_FILES = {
    "falco-0.31.1-host-alerts.jsonl": 215,
    "falco-test-single_rule_with_cat_write.jsonl": 8,
}


@pytest.mark.parametrize(("name", "expected"), sorted(FALCO_FILES.items()))
def test_every_falco_sample_normalizes(fixtures_dir, name, expected):
    normalizer = Normalizer()
    events = []
    for _, raw in file_records(fixtures_dir / "falco" / name):
        events.extend(normalizer.normalize(raw, family="falco"))
    assert len(events) == expected
    assert all(e.source == "falco" and e.type == "runtime_alert" for e in events)
    assert len({e.id for e in events}) == expected, "event ids must be unique per alert"


def test_falco_fields_and_severity(fixtures_dir):
    raw = next(file_records(fixtures_dir / "falco" / "falco-0.31.1-host-alerts.jsonl"))[1]
    (event,) = Normalizer().normalize(raw, family="falco")
    assert event.time == "2022-05-01T23:29:32.918Z"
    assert event.severity == "info"  # Informational
    assert event.entity == "host:unknown"  # Falco 0.31 JSON carries no hostname
    assert event.attributes["rule"] == "Launch Privileged Container"
    assert event.attributes["image"] == "fedora"
    assert event.attributes["container_id"] == "bfb9637a47a6"


def test_hostname_is_the_entity(fixtures_dir):
    path = fixtures_dir / "falco" / "falco-test-single_rule_with_cat_write.jsonl"
    raw = next(file_records(path))[1]
    (event,) = Normalizer().normalize(raw, family="falco")
    assert event.entity == "host:test-falco-hostname"
    assert event.severity == "medium"


def test_sidekick_envelope_uuid_does_not_change_identity(fixtures_dir):
    raw = next(file_records(fixtures_dir / "falco" / "falco-0.31.1-host-alerts.jsonl"))[1]
    doc = orjson.loads(raw)
    a = Normalizer().normalize(orjson.dumps({**doc, "uuid": "1"}), family="falco")[0]
    b = Normalizer().normalize(orjson.dumps({**doc, "uuid": "2"}), family="falco")[0]
    assert a.id == b.id
    assert a.attributes["sidekick_uuid"] == "1"


def test_secrets_in_cmdline_are_masked():
    alert = {
        "rule": "Terminal shell in container",
        "priority": "Critical",
        "output": "shell (cmdline=mysql -u root --password=hunter2 user=alice@example.com)",
        "time": "2024-01-01T00:00:00Z",
        "hostname": "node-1",
        "output_fields": {"proc.cmdline": "mysql -u root --password=hunter2"},
    }
    (event,) = Normalizer().normalize(orjson.dumps(alert), family="falco")
    text = orjson.dumps(event.to_dict()).decode()
    assert "hunter2" not in text
    assert "alice@example.com" not in text
    assert event.severity == "critical"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", ErrorCode.MALFORMED_JSON),
        (b"\xff\xfe", ErrorCode.INVALID_UTF8),
        (b'{"rule": 1, "priority": "Warning", "output": "x"}', ErrorCode.WRONG_TYPE),
        (b'{"rule": "r", "priority": "Warning", "output": "x"}', ErrorCode.MISSING_FIELD),
        (b'{"rule": "r", "priority": "Loud", "output": "x", "time": 1}', ErrorCode.INVALID_VALUE),
        (
            b'{"rule": "r", "priority": "Warning", "output": "x", "time": "x"}',
            ErrorCode.INVALID_VALUE,
        ),
        (b'{"hello": "world"}', ErrorCode.UNKNOWN_FORMAT),
        (b"[" * 100 + b"]" * 100, ErrorCode.TOO_DEEP),
    ],
)
def test_bad_falco_records_fail_with_a_code(raw, code):
    with pytest.raises(NormalizeError) as info:
        Normalizer().normalize(raw, family="falco")
    assert info.value.code == code


def test_oversized_record_is_rejected():
    from app.sources.decode import DecodeLimits

    normalizer = Normalizer(limits=DecodeLimits(max_bytes=100))
    with pytest.raises(NormalizeError) as info:
        normalizer.normalize(b'{"rule": "' + b"x" * 200 + b'"}', family="falco")
    assert info.value.code == ErrorCode.TOO_LARGE
