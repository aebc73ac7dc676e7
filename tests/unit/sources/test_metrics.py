"""Metric samples (JSON and Prometheus text exposition) normalize to one `metric` event each.

There are no metric fixtures in shared/, so the samples live here. The exposition text is the
example in prometheus/docs `content/docs/instrumenting/exposition_formats.md`, with timestamps
added to the two lines that had none (Vigil never stamps samples with the processing clock).
"""

from __future__ import annotations

import orjson
import pytest

from app.sources.errors import ErrorCode, NormalizeError
from app.sources.metrics import series_key
from app.sources.normalize import Normalizer

EXPOSITION = (
    b"""\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds"""
    b"""{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""}"""
    b""" 1.458255915e9 1395066363000

# Minimalistic line:
metric_without_timestamp_and_labels 12.47 1395066363000

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045
"""
)


def _normalize(raw: bytes | dict | list) -> list:
    if not isinstance(raw, bytes):
        raw = orjson.dumps(raw)
    return Normalizer().normalize(raw, family="metrics")


def test_exposition_text_parses_every_sample():
    text = EXPOSITION.replace(b"+Inf -3982045", b"+Inf 1395066363000")
    events = _normalize(text)
    assert len(events) == 5
    assert all(e.source == "metrics" and e.type == "metric" for e in events)
    assert all(e.time == "2014-03-17T14:26:03.000Z" for e in events)
    assert len({e.id for e in events}) == 5
    first = events[0]
    assert first.attributes["name"] == "http_requests_total"
    assert first.attributes["labels"] == {"method": "post", "code": "200"}
    assert first.attributes["value"] == 1027.0
    assert first.attributes["series"] == 'http_requests_total{code="200",method="post"}'
    assert first.entity == "metric:http_requests_total"
    assert first.severity == "info"
    assert events[1].attributes["value"] == 3.0  # several spaces before the value


def test_escaped_label_values():
    events = _normalize(EXPOSITION.replace(b"+Inf -3982045", b"+Inf 1395066363000"))
    labels = events[2].attributes["labels"]
    assert labels["path"] == "C:\\DIR\\FILE.TXT"
    assert labels["error"] == 'Cannot find file:\n"FILE.TXT"'
    assert events[2].attributes["value"] == 1458255915.0
    assert events[2].attributes["series"] == (
        'msdos_file_access_time_seconds{error="Cannot find file:\\n\\"FILE.TXT\\"",'
        'path="C:\\\\DIR\\\\FILE.TXT"}'
    )
    assert events[3].attributes["labels"] == {}
    assert events[3].attributes["series"] == "metric_without_timestamp_and_labels"


def test_negative_timestamp_is_invalid():
    with pytest.raises(NormalizeError) as info:
        _normalize(EXPOSITION)
    assert info.value.code == ErrorCode.INVALID_VALUE


def test_non_finite_values_are_kept_with_their_text():
    events = _normalize(b'up{job="a"} NaN 1000\nup{job="b"} +Inf 1000\nup{job="c"} -Inf 1000')
    assert [e.attributes["value"] for e in events] == [None, None, None]
    assert [e.attributes["value_text"] for e in events] == ["NaN", "+Inf", "-Inf"]
    (event,) = _normalize({"name": "up", "value": "NaN", "timestamp": 1000})
    assert event.attributes["value_text"] == "NaN"


def test_entity_from_service_then_host():
    events = _normalize(
        b'up{instance="10.0.0.5:9100",job="node"} 1 1714557600000\n'
        b'node_load1{instance="db-1:9100"} 0.5 1714557600000\n'
        b'node_load5{host="[::1]:9100"} 0.5 1714557600000'
    )
    assert [e.entity for e in events] == ["service:node", "host:db-1", "host:::1"]
    assert events[0].time == "2024-05-01T10:00:00.000Z"


def test_openmetrics_seconds_timestamp_and_prometheus3_quoted_name():
    (event,) = _normalize(b'{"my.metric", "label.x"="v", le="+Inf"} 2 1520879607.789')
    assert event.attributes["name"] == "my.metric"
    assert event.attributes["labels"] == {"label.x": "v", "le": "+Inf"}
    assert event.time == "2018-03-12T18:33:27.789Z"


def test_json_sample_forms():
    sample = {"name": "cpu", "labels": {"app": "web"}, "value": 0.25, "timestamp": 1714557600}
    (event,) = _normalize(sample)
    assert event.entity == "service:web"
    assert event.time == "2024-05-01T10:00:00.000Z"
    assert event.attributes["value"] == 0.25
    assert event.attributes["value_text"] is None
    assert len(_normalize([sample, {**sample, "timestamp": "2024-05-01T10:00:10Z"}])) == 2
    no_time = {"name": "cpu", "value": 1}
    events = _normalize({"samples": [no_time, no_time], "timestamp": "2024-05-01T10:00:00Z"})
    assert [e.time for e in events] == ["2024-05-01T10:00:00.000Z"] * 2
    assert events[0].id == events[1].id  # the same series at the same time is the same sample


def test_exposition_envelope_gives_a_default_time():
    doc = {"exposition": 'up 1\nup{job="x"} 0 1714557660000', "timestamp": 1714557600000}
    first, second = _normalize(doc)
    assert first.time == "2024-05-01T10:00:00.000Z"
    assert second.time == "2024-05-01T10:01:00.000Z"  # a line's own timestamp wins


def test_ids_are_per_series_and_time():
    a = _normalize(b"up 1 1000")[0]
    assert a.id == _normalize(b"up 0 1000")[0].id  # a re-sent sample keeps its id
    assert a.id != _normalize(b"up 1 2000")[0].id
    assert a.id != _normalize(b'up{job="x"} 1 1000')[0].id


def test_series_key_sorts_labels():
    assert series_key("m", {"b": "2", "a": "1"}) == 'm{a="1",b="2"}'
    assert series_key("m", {}) == "m"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"up 1", ErrorCode.MISSING_FIELD),  # no timestamp, no envelope default
        (b"# HELP up Up.\n# TYPE up gauge\n", ErrorCode.EMPTY),
        (b"up", ErrorCode.MALFORMED_JSON),
        (b"up{job=x} 1 1000", ErrorCode.MALFORMED_JSON),
        (b'up{job="x} 1 1000', ErrorCode.MALFORMED_JSON),
        (b'up{job="x"} 1 1000 extra', ErrorCode.MALFORMED_JSON),
        (b'up{job="\\t"} 1 1000', ErrorCode.MALFORMED_JSON),
        (b'up{job="a",job="b"} 1 1000', ErrorCode.MALFORMED_JSON),
        (b"up one 1000", ErrorCode.INVALID_VALUE),
        (b"up 1 soon", ErrorCode.INVALID_VALUE),
        (b"up 1 1e300", ErrorCode.INVALID_VALUE),
        (b"up 1 1_000", ErrorCode.INVALID_VALUE),
        (b"up 1_0 1000", ErrorCode.INVALID_VALUE),
        (b'{"name": "up", "value": 1, "timestamp": 1e300}', ErrorCode.INVALID_VALUE),
        (b'{"name": "up", "value": 1}', ErrorCode.MISSING_FIELD),
        (b'{"name": "up", "value": true, "timestamp": 1}', ErrorCode.WRONG_TYPE),
        (b'{"name": "up", "value": "x", "timestamp": 1}', ErrorCode.INVALID_VALUE),
        (b'{"name": "up", "value": 1, "timestamp": "x"}', ErrorCode.INVALID_VALUE),
        (b'{"labels": {"a": "b"}, "value": 1, "timestamp": 1}', ErrorCode.MISSING_FIELD),
        (b'{"name": "up", "labels": {"a": 1}, "value": 1, "timestamp": 1}', ErrorCode.WRONG_TYPE),
        (b'{"samples": []}', ErrorCode.EMPTY),
        (b'{"samples": [1]}', ErrorCode.WRONG_TYPE),
        (b'{"samples": "x"}', ErrorCode.WRONG_TYPE),
        (b'{"hello": "world"}', ErrorCode.UNKNOWN_FORMAT),
        (b"{not json", ErrorCode.MALFORMED_JSON),
        (b"!!", ErrorCode.UNKNOWN_FORMAT),
    ],
)
def test_bad_metric_records_fail_with_a_code(raw, code):
    with pytest.raises(NormalizeError) as info:
        _normalize(raw)
    assert info.value.code == code
