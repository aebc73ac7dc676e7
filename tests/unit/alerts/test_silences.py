"""Silences and inhibition (tables/alerts/silences.py) and how the alert stage applies them."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from app.model.events import Event, format_time, parse_time
from app.runtime.staged import StagedState
from app.sources.normalize import Normalizer
from tables.alerts.config import DedupConfig
from tables.alerts.silences import (
    Matcher,
    apply_inhibitor,
    inhibited_by,
    parse_inhibit_rule,
    parse_matcher,
    parse_silence,
    silence_state,
    silenced_by,
)
from tests.unit.alerts.harness import Harness

T0 = parse_time("2024-03-01T12:00:00Z")
S = 1000
MIN = 60 * S
HOUR = 60 * MIN
NORMALIZER = Normalizer()


def records(outputs) -> list[dict]:
    return [o.value for o in outputs if o.topic == "alerts"]


def falco(ts: int, rule: str = "Terminal shell in container", host: str = "node-a") -> Event:
    record = {
        "time": format_time(ts),
        "rule": rule,
        "priority": "Notice",
        "output": f"{rule} at {ts}",
        "hostname": host,
        "output_fields": {"container.image.repository": "nginx"},
    }
    (event,) = NORMALIZER.normalize(orjson.dumps(record), family="falco")
    return event


def prom(labels: dict, starts: int, ends: int | None = None, status: str = "firing") -> Event:
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {},
        "startsAt": format_time(starts),
        "endsAt": format_time(ends) if ends is not None else "0001-01-01T00:00:00Z",
    }
    payload = {"version": "4", "status": status, "receiver": "vigil", "alerts": [alert]}
    (event,) = NORMALIZER.normalize(orjson.dumps(payload), family="alertmanager")
    return event


def silence(matchers, starts=T0, ends=T0 + HOUR, **extra) -> dict:
    return parse_silence(
        {
            "matchers": matchers,
            "startsAt": format_time(starts),
            "endsAt": format_time(ends),
            "createdBy": "oncall@example.com",
            "comment": "maintenance",
            **extra,
        }
    )


# ---- matchers and silences --------------------------------------------------------------


def test_matcher_operators_and_missing_labels():
    labels = {"alertname": "NodeDown", "severity": "critical"}
    assert parse_matcher('alertname="NodeDown"').matches(labels)
    assert parse_matcher("severity!=warning").matches(labels)
    assert parse_matcher('severity=~"crit.*"').matches(labels)
    assert not parse_matcher('severity=~"crit"').matches(labels), "regexes match whole values"
    assert parse_matcher('severity!~"warn|info"').matches(labels)
    assert parse_matcher('team=""').matches(labels), "a missing label is the empty string"
    assert not parse_matcher('team=~".+"').matches(labels)
    api_v2 = {"name": "severity", "value": "critical", "isRegex": False, "isEqual": False}
    assert parse_matcher(api_v2) == Matcher("severity", "!=", "critical")
    assert str(parse_matcher('a=~"x|y"')) == 'a=~"x|y"'


def test_parse_silence_normalises_and_ids_are_deterministic():
    first = silence(['alertname="NodeDown"', {"name": "node", "value": "node-.*", "isRegex": True}])
    again = silence(['alertname="NodeDown"', {"name": "node", "value": "node-.*", "isRegex": True}])
    assert first["id"] == again["id"]
    assert first["matchers"] == [
        {"name": "alertname", "op": "=", "value": "NodeDown"},
        {"name": "node", "op": "=~", "value": "node-.*"},
    ]
    assert (first["starts_ms"], first["ends_ms"]) == (T0, T0 + HOUR)
    assert first["startsAt"] == format_time(T0)
    assert silence(['a="b"'], id="my-silence")["id"] == "my-silence"
    orjson.dumps(first)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"matchers": []}, "non-empty list"),
        ({"matchers": ['team=~".*"']}, "must not match the empty string"),
        ({"matchers": ['a=~"("']}, "invalid regular expression"),
        ({"matchers": ['1abc="x"']}, "cannot parse matcher"),
        ({"matchers": [{"name": "a", "op": "==", "value": "x"}]}, "unknown operator"),
        ({"matchers": [{"name": "bad-name", "value": "x"}]}, "invalid label name"),
        ({"startsAt": None}, "'startsAt' is required"),
        ({"endsAt": "yesterday"}, "'endsAt' is not a timestamp"),
        ({"endsAt": format_time(T0 - 1)}, "must not be before"),
        ({"createdBy": ""}, "'createdBy' must be a non-empty string"),
        ({"comment": None}, "'comment' must be a non-empty string"),
    ],
)
def test_parse_silence_rejects_invalid_silences(change, message):
    data = {
        "matchers": ['alertname="X"'],
        "startsAt": format_time(T0),
        "endsAt": format_time(T0 + HOUR),
        "createdBy": "me",
        "comment": "why",
        **change,
    }
    with pytest.raises(ValueError, match=message):
        parse_silence(data)


def test_silence_states_and_matching():
    s = silence(['alertname="X"'], starts=T0, ends=T0 + HOUR)
    assert silence_state(s, T0 - 1) == "pending"
    assert silence_state(s, T0) == "active"
    assert silence_state(s, T0 + HOUR - 1) == "active"
    assert silence_state(s, T0 + HOUR) == "expired"
    table = {s["id"]: s}
    assert silenced_by({"alertname": "X"}, table, T0 + 1) == [s["id"]]
    assert silenced_by({"alertname": "X"}, table, T0 + HOUR) == []
    assert silenced_by({"alertname": "Y"}, table, T0 + 1) == []


# ---- inhibition rules -------------------------------------------------------------------

NODE_RULE = {
    "source_matchers": ['alertname="NodeDown"'],
    "target_matchers": ['alertname="PodCrashLooping"'],
    "equal": ["node"],
}


def test_inhibit_rule_equal_labels_and_two_sided_matches():
    rule = parse_inhibit_rule(NODE_RULE)
    source = {
        "fingerprint": "f1",
        "status": "firing",
        "labels": {"alertname": "NodeDown", "node": "a"},
    }
    sources = {"f1": source}
    assert inhibited_by({"alertname": "PodCrashLooping", "node": "a"}, [rule], sources, T0) == [
        "f1"
    ]
    assert inhibited_by({"alertname": "PodCrashLooping", "node": "b"}, [rule], sources, T0) == []
    resolved = {"f1": {**source, "status": "resolved"}}
    assert inhibited_by({"alertname": "PodCrashLooping", "node": "a"}, [rule], resolved, T0) == []
    expired = {"f1": {**source, "ends_ms": T0}}
    assert inhibited_by({"alertname": "PodCrashLooping", "node": "a"}, [rule], expired, T0) == []
    # A missing label counts as empty: both without `node` are equal.
    unnamed = {"f2": {"status": "firing", "labels": {"alertname": "NodeDown"}}}
    assert inhibited_by({"alertname": "PodCrashLooping"}, [rule], unnamed, T0) == ["f2"]
    # An alert matching both sides is never muted by another that also matches both sides.
    both = parse_inhibit_rule(
        {"source_matchers": ['severity="critical"'], "target_matchers": ['severity=~".+"']}
    )
    critical = {"f3": {"status": "firing", "labels": {"severity": "critical"}}}
    assert inhibited_by({"severity": "critical"}, [both], critical, T0) == []
    assert inhibited_by({"severity": "warning"}, [both], critical, T0) == ["f3"]
    legacy = parse_inhibit_rule(
        {"source_match": {"alertname": "NodeDown"}, "target_match_re": {"alertname": "Pod.*"}}
    )
    assert inhibited_by({"alertname": "PodPending"}, [legacy], unnamed, T0) == ["f2"]
    with pytest.raises(ValueError, match="both source and target"):
        parse_inhibit_rule({"source_matchers": ['a="b"']})


def test_apply_inhibitor_keeps_firing_and_drops_resolved():
    table: dict = {}
    apply_inhibitor(table, "f1", {"status": "firing", "labels": {}})
    assert "f1" in table
    apply_inhibitor(table, "f1", {"status": "resolved"})
    assert table == {}


# ---- the stage ----------------------------------------------------------------------------


def test_a_silence_mutes_the_falco_fixture_rule_it_matches(fixtures_dir):
    lines = (fixtures_dir / "falco/falco-0.31.1-host-alerts.jsonl").read_bytes().splitlines()
    events = sorted(
        (e for line in lines if line.strip() for e in NORMALIZER.normalize(line, family="falco")),
        key=lambda e: e.ts_ms,
    )
    s = silence(
        ['alertname="Write below root"', 'entity="host:unknown"'],
        starts=events[0].ts_ms,
        ends=events[-1].ts_ms + 24 * HOUR,
    )
    muted = Harness(DedupConfig(), silences={s["id"]: s})
    plain = Harness(DedupConfig())
    outputs = muted.feed(*events) + muted.stage.flush(
        StagedState(muted.alerts), StagedState(muted.groups), muted.schedule
    )
    reference = plain.feed(*events) + plain.stage.flush(
        StagedState(plain.alerts), StagedState(plain.groups), plain.schedule
    )
    assert not [r for r in records(outputs) if r["labels"]["alertname"] == "Write below root"]
    expected = [r for r in records(reference) if r["labels"]["alertname"] != "Write below root"]
    assert records(outputs) == expected
    acc = muted.stage.accounting
    assert acc["silenced"] == 66
    assert acc["notified"] + acc["folded"] + acc["silenced"] + acc["inhibited"] == 215
    (state,) = [v for v in muted.alerts.values() if v["labels"]["alertname"] == "Write below root"]
    assert state["silenced_by"] == [s["id"]]


def test_an_alert_shows_up_at_the_first_tick_after_its_silence_expires():
    s = silence(['alertname="Terminal shell in container"'], starts=T0 - HOUR, ends=T0 + 10 * MIN)
    p = Harness(DedupConfig(), silences={s["id"]: s})
    outputs = []
    for minute in range(30):
        outputs += p.feed(falco(T0 + minute * MIN))
    notes = [(parse_time(r["time"]) - T0, r["notification"]) for r in records(outputs)]
    assert notes == [(10 * MIN + 30 * S, "firing")]
    assert p.stage.accounting["silenced"] == 10


def test_node_down_inhibits_pod_alerts_on_the_same_node_across_partitions():
    rule = parse_inhibit_rule(NODE_RULE)
    config = DedupConfig(inhibit_rules=(rule,))
    inhibitors: dict = {}  # the global table both workers read
    nodes = Harness(config, inhibitors=inhibitors)
    pods = Harness(config, inhibitors=inhibitors)

    def publish(outputs):
        for output in outputs:
            if output.topic == "inhibitors":
                apply_inhibitor(inhibitors, output.key, output.value)
        return outputs

    node_down = {"alertname": "NodeDown", "node": "node-a", "instance": "node-a:9100"}
    publish(nodes.feed(prom(node_down, T0, ends=T0 + 20 * MIN)))
    assert [v["labels"]["alertname"] for v in inhibitors.values()] == ["NodeDown"]

    def pod(node: str, starts: int) -> Event:
        labels = {"alertname": "PodCrashLooping", "node": node, "pod": f"api-{node}"}
        return prom({**labels, "service": f"api-{node}"}, starts)

    outputs = pods.feed(pod("node-a", T0 + 10 * S), pod("node-b", T0 + 20 * S))
    outputs += pods.advance(T0 + 15 * MIN)
    notified = {r["labels"]["node"] for r in records(outputs)}
    assert notified == {"node-b"}, "the pod on the failed node is inhibited"
    (muted,) = [v for v in pods.alerts.values() if v["labels"].get("node") == "node-a"]
    assert muted["inhibited_by"] == [next(iter(inhibitors))]
    assert pods.stage.accounting["inhibited"] == 1

    # NodeDown ends (endsAt passes): it unregisters; the next pod alert on node-a is notified.
    publish(nodes.advance(T0 + HOUR))
    assert inhibitors == {}
    outputs = pods.feed(pod("node-a", T0 + HOUR)) + pods.advance(T0 + 2 * HOUR)
    assert [(r["labels"]["node"], r["notification"]) for r in records(outputs)] == [
        ("node-a", "firing"),
        ("node-a", "resolved"),
    ]
    acc = pods.stage.accounting
    assert acc == Counter(inputs=3, inhibited=1, notified=2)
