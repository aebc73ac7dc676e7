"""Fluent Bit Kubernetes log records normalize to one `log` event, with level and HTTP fields."""

from __future__ import annotations

import orjson
import pytest

from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.normalize import Normalizer

FLUENTBIT_FILES = {
    "apache-logs-annotated_default.jsonl": 1,
    "apache-logs_default.jsonl": 1,
    "json-logs_default.jsonl": 1,
}

K8S = {
    "pod_name": "api-7d9f-abcde",
    "namespace_name": "shop",
    "container_name": "api",
    "host": "node-3",
    "labels": {"app.kubernetes.io/name": "checkout", "pod-template-hash": "7d9f"},
}


def _normalize(doc) -> list:
    return Normalizer().normalize(orjson.dumps(doc), family="logs")


def _record(log: str, **fields) -> dict:
    return {
        "log": log,
        "stream": "stderr",
        "time": "2024-05-01T10:00:00.123456789Z",
        "kubernetes": K8S,
        **fields,
    }


def _fixture_event(fixtures_dir, name):
    raw = next(file_records(fixtures_dir / "fluent-bit" / name))[1]
    (event,) = Normalizer().normalize(raw, family="logs")
    return event


@pytest.mark.parametrize(("name", "expected"), sorted(FLUENTBIT_FILES.items()))
def test_every_fluentbit_sample_normalizes(fixtures_dir, name, expected):
    normalizer = Normalizer()
    events = []
    for _, raw in file_records(fixtures_dir / "fluent-bit" / name):
        events.extend(normalizer.normalize(raw, family="logs"))
    assert len(events) == expected
    assert all(e.source == "fluentbit" and e.type == "log" for e in events)


def test_plain_json_record(fixtures_dir):
    event = _fixture_event(fixtures_dir, "json-logs_default.jsonl")
    assert event.time == "2018-02-22T13:14:50.773Z"  # the record's `time`
    assert event.entity == "service:json-logs"  # container name: no app label
    assert event.severity == "info"
    attrs = event.attributes
    assert attrs["namespace"] == "default"
    assert attrs["pod"] == "json-logs"
    assert attrs["node"] == "minikube"
    assert attrs["labels"] == {"run": "json-logs"}
    assert attrs["log"] == '{"message_id": 1, "word": "eagers"}'
    assert attrs["level"] is None
    assert attrs["http_status"] is None


def test_event_form_uses_fluent_bit_timestamp_and_access_log(fixtures_dir):
    event = _fixture_event(fixtures_dir, "apache-logs_default.jsonl")
    assert event.time == "2018-02-21T17:26:53.360Z"  # [1519234013.360921, record]
    assert event.entity == "service:apache-logs"
    assert event.attributes["http_status"] == 500
    assert event.attributes["http_method"] == "GET"
    assert event.attributes["http_path"] == "/intra-abdominally"
    assert event.severity == "low"  # 5xx


def test_annotated_apache_record(fixtures_dir):
    event = _fixture_event(fixtures_dir, "apache-logs-annotated_default.jsonl")
    # Fluent Bit's event time (set by the apache parser from the line), not docker's `time`.
    assert event.time == "2018-02-21T17:21:00.000Z"
    assert event.attributes["http_status"] == 200
    assert event.severity == "info"


def test_v2_event_header_with_metadata():
    (event,) = _normalize([[1714557600.5, {"tag": "kube"}], _record("hello")])
    assert event.time == "2024-05-01T10:00:00.500Z"


def test_time_falls_back_to_access_log_line():
    record = _record(
        '1.2.3.4 - - [01/May/2024:12:00:00 +0200] "POST /login?token=abc HTTP/1.1" 503 0'
    )
    del record["time"]
    (event,) = _normalize(record)
    assert event.time == "2024-05-01T10:00:00.000Z"
    assert event.attributes["http_method"] == "POST"
    assert event.attributes["http_path"] == "/login"  # query string dropped
    assert event.attributes["http_status"] == 503


def test_entity_prefers_app_label_and_drops_rollout_hashes():
    (event,) = _normalize(_record("hello"))
    assert event.entity == "service:checkout"
    assert event.attributes["labels"] == {"app.kubernetes.io/name": "checkout"}
    k8s = {"pod_name": "job-x", "namespace_name": "batch"}
    (event,) = _normalize({**_record("hello"), "kubernetes": k8s})
    assert event.entity == "pod:batch/job-x"


@pytest.mark.parametrize(
    ("log", "fields", "level"),
    [
        ('{"level":"error","msg":"db down"}', {}, "error"),
        ('{"severity":"WARNING","msg":"slow"}', {}, "warn"),
        ('{"level":50,"msg":"pino error"}', {}, "error"),
        ("time=1 level=debug msg=x", {}, "debug"),
        ("2024-05-01 10:00:00 FATAL could not start", {}, "fatal"),
        ("[main] INFO started in 3s", {}, "info"),
        ("no level words here, only an error in lower case", {}, None),
        ("merged", {"level": "warn"}, "warn"),
    ],
)
def test_level_extraction(log, fields, level):
    (event,) = _normalize(_record(log, **fields))
    assert event.attributes["level"] == level
    expected = "low" if level in ("error", "fatal") else "info"
    assert event.severity == expected


@pytest.mark.parametrize(
    ("log", "fields", "status"),
    [
        ('{"status":404,"method":"get","path":"/x?y=1"}', {}, 404),
        ('{"status_code":"502"}', {}, 502),
        ('{"code":"E42"}', {}, None),
        ('{"code":1}', {}, None),
        ("plain text", {"code": "200", "method": "GET", "path": "/a"}, 200),
        ('10.0.0.1 - bob [01/May/2024:10:00:00 +0000] "GET /b HTTP/2.0" 301 5 "-" "curl"', {}, 301),
    ],
)
def test_http_status_extraction(log, fields, status):
    (event,) = _normalize(_record(log, **fields))
    assert event.attributes["http_status"] == status


def test_long_logs_are_truncated_and_ids_are_stable():
    record = _record("x" * 5000)
    (a,) = _normalize(record)
    (b,) = _normalize(record)
    assert len(a.attributes["log"]) == 2048
    assert a.id == b.id
    (c,) = _normalize({**record, "time": "2024-05-01T10:00:01Z"})
    assert c.id != a.id


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ({**_record("x"), "kubernetes": "pod"}, ErrorCode.WRONG_TYPE),
        ({**_record("x"), "time": "soon"}, ErrorCode.INVALID_VALUE),
        ({"log": "x", "kubernetes": {"pod_name": "p"}}, ErrorCode.MISSING_FIELD),
        ({**_record("x"), "kubernetes": {}}, ErrorCode.MISSING_FIELD),
        ({**_record("x"), "log": 5}, ErrorCode.WRONG_TYPE),
        (["soon", _record("x")], ErrorCode.WRONG_TYPE),
        ([-5, _record("x")], ErrorCode.INVALID_VALUE),
        ([1e300, _record("x")], ErrorCode.INVALID_VALUE),
        ([[1.0, "meta"], _record("x")], ErrorCode.WRONG_TYPE),
        ([1.0, "record"], ErrorCode.UNKNOWN_FORMAT),
        ({"log": "no kubernetes metadata"}, ErrorCode.UNKNOWN_FORMAT),
    ],
)
def test_bad_fluentbit_records_fail_with_a_code(doc, code):
    with pytest.raises(NormalizeError) as info:
        _normalize(doc)
    assert info.value.code == code
