"""Edges of the input: event times ahead of the wall clock, NUL bytes, control characters."""

from __future__ import annotations

import base64
import hashlib
import time

import orjson
import pytest

from app.cli import main
from app.masking import MaskingPolicy, mask_raw
from app.model.events import format_time
from app.model.outputs import Origin
from app.pipeline import Pipeline, build_normalizer
from app.settings import Settings
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.normalize import Normalizer

DAY_MS = 86_400_000
ORIGIN = Origin(topic="telemetry.falco", partition=0, offset=7)


def falco_alert(when: str, hostname: str = "web-1") -> bytes:
    alert = {"rule": "Write below etc", "priority": "Error", "output": "o", "time": when}
    return orjson.dumps(alert | {"hostname": hostname})


def from_now(ms: int) -> str:
    return format_time(int(time.time() * 1000) + ms)


def test_two_days_ahead_is_dead_lettered_never_an_event():
    raw = falco_alert(from_now(2 * DAY_MS))
    outputs = Pipeline(Settings()).ingest(raw, "falco", ORIGIN)
    assert [out.topic for out in outputs] == ["deadletter"]
    dead = outputs[0].value
    assert dead["error_code"] == "future_timestamp"
    assert "VIGIL_MAX_FUTURE_SKEW_MS" in dead["message"] and "3600000 ms" in dead["message"]
    assert base64.b64decode(dead["raw_b64"]) == raw


def test_thirty_minutes_ahead_passes():
    outputs = Pipeline(Settings()).ingest(falco_alert(from_now(30 * 60_000)), "falco", ORIGIN)
    assert [out.topic for out in outputs] == ["events"]


def test_zero_turns_the_check_off():
    settings = Settings.from_env({"VIGIL_MAX_FUTURE_SKEW_MS": "0"})
    raw = falco_alert("2999-01-01T00:00:00Z")
    assert [out.topic for out in Pipeline(settings).ingest(raw, "falco", ORIGIN)] == ["events"]


def test_negative_skew_is_refused():
    with pytest.raises(ValueError, match="VIGIL_MAX_FUTURE_SKEW_MS"):
        Settings.from_env({"VIGIL_MAX_FUTURE_SKEW_MS": "-1"})


def test_year_2999_falco_alert_is_refused_with_time_and_limit():
    normalizer = Normalizer(clock_ms=lambda: 1_796_342_400_000)  # 2026-12-04T00:00:00Z
    with pytest.raises(NormalizeError) as caught:
        normalizer.normalize(falco_alert("2999-01-01T00:00:00Z"), family="falco")
    assert caught.value.code is ErrorCode.FUTURE_TIMESTAMP
    assert "2999-01-01T00:00:00.000Z" in caught.value.message
    assert "limit 2026-12-04T01:00:00.000Z" in caught.value.message


def test_seconds_read_as_milliseconds_metric_sample_is_refused():
    raw = orjson.dumps({"name": "up", "value": 1, "timestamp": 99_999_999_999, "labels": {}})
    outputs = Pipeline(Settings()).ingest(raw, "metrics", ORIGIN)
    assert [out.value["error_code"] for out in outputs] == ["future_timestamp"]
    assert "5138-" in outputs[0].value["message"]


def test_only_the_future_events_of_a_cloudtrail_batch_are_dead_lettered(fixtures_dir):
    name = "stratus-aws.credential-access.secretsmanager-batch-retrieve-secrets.json"
    records = orjson.loads((fixtures_dir / "cloudtrail" / name).read_bytes())
    records[1]["eventTime"] = records[3]["eventTime"] = from_now(2 * DAY_MS)[:19] + "Z"
    raw = orjson.dumps({"Records": records})
    origin = Origin(topic="telemetry.cloudtrail", partition=1, offset=3)
    outputs = Pipeline(Settings()).ingest(raw, "cloudtrail", origin)
    dead = [out.value for out in outputs if out.topic == "deadletter"]
    events = [out.value for out in outputs if out.topic == "events"]
    assert [d["event_index"] for d in dead] == [1, 3]
    assert all(d["error_code"] == "future_timestamp" for d in dead)
    assert dead[0]["message"].startswith("event 1 of 5: event time ")
    assert len({d["id"] for d in dead}) == 2, "each refused event has a dead letter of its own"
    # the original bytes, masked like events (the batch holds access key ids)
    assert all(base64.b64decode(d["raw_b64"]) == mask_raw(raw, MaskingPolicy()) for d in dead)
    assert all(d["raw_sha256"] == hashlib.sha256(raw).hexdigest() for d in dead)
    assert [e["origin"]["i"] for e in events] == [0, 2, 4], "kept events keep their index"


def test_a_record_whose_every_event_is_future_is_one_dead_letter(fixtures_dir):
    name = "stratus-aws.credential-access.secretsmanager-batch-retrieve-secrets.json"
    records = orjson.loads((fixtures_dir / "cloudtrail" / name).read_bytes())
    for record in records:
        record["eventTime"] = from_now(2 * DAY_MS)[:19] + "Z"
    outputs = Pipeline(Settings()).ingest(orjson.dumps(records), "cloudtrail", ORIGIN)
    assert [out.topic for out in outputs] == ["deadletter"]
    assert outputs[0].value["event_index"] is None
    assert outputs[0].value["message"].startswith("all 5 events are future-dated")


def test_escaped_nul_never_reaches_the_entity_key():
    raw = falco_alert("2026-01-01T00:00:00Z", hostname="h\x00x\x1b\x7f")
    (event,) = build_normalizer(Settings()).normalize(raw, family="falco")
    assert event.entity == "host:h\ufffdx\ufffd\ufffd"
    assert event.attributes["hostname"] == "h\x00x\x1b\x7f", "attributes keep the source's value"


def test_raw_nul_byte_has_its_own_code():
    for family in ("metrics", "falco", None):
        with pytest.raises(NormalizeError) as caught:
            Normalizer().normalize(b'up{job="a"} 1\x00\n', family=family)
        assert caught.value.code is ErrorCode.BINARY
        assert "NUL byte" in caught.value.message


def test_vigil_normalize_reports_each_refused_event_and_prints_the_rest(
    fixtures_dir, tmp_path, capfdbinary
):
    name = "stratus-aws.credential-access.secretsmanager-batch-retrieve-secrets.json"
    records = orjson.loads((fixtures_dir / "cloudtrail" / name).read_bytes())
    records[2]["eventTime"] = from_now(2 * DAY_MS)[:19] + "Z"
    path = tmp_path / "trail.json"
    path.write_bytes(orjson.dumps(records))
    assert main(["normalize", str(path)]) == 1
    out, err = capfdbinary.readouterr()
    (error,) = [orjson.loads(line) for line in err.splitlines()]
    assert (error["record"], error["event"], error["error_code"]) == (0, 2, "future_timestamp")
    assert len(out.splitlines()) == 4
