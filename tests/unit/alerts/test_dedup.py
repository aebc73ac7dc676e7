"""Alert dedup and notification (tables/alerts/stage.py): Alertmanager's grouping and notification
rules in event time, fingerprints, the Falco and Trivy fixtures, replay determinism."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import random
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest

from app.model.events import Event, event_id, format_time, parse_time
from app.model.fingerprints import alertmanager_fingerprint
from app.runtime import spill
from app.runtime.staged import StagedState
from app.sources.normalize import Normalizer
from tables.alerts.config import DedupConfig
from tables.alerts.labels import alert_from_anomaly, alert_from_event, resolutions_from_scan
from tables.alerts.pending import INLINE_PENDING, MAX_PENDING_INPUTS, PENDING
from tables.alerts.records import dedup_key, group_key
from tables.alerts.timers import TimerSchedule
from tests.unit.alerts.harness import Harness

T0 = parse_time("2024-03-01T12:00:00Z")
S = 1000
MIN = 60 * S
HOUR = 60 * MIN
NORMALIZER = Normalizer()


def records(outputs) -> list[dict]:
    return [o.value for o in outputs if o.topic == "alerts"]


def brief(outputs) -> list[tuple[int, str, str, int]]:
    """(time offset from T0, alertname/image, notification, count) per alert record."""
    return [
        (
            parse_time(r["time"]) - T0,
            r["labels"].get("image") or r["labels"].get("alertname"),
            r["notification"],
            r["count"],
        )
        for r in records(outputs)
    ]


def falco(
    ts: int, rule: str = "Terminal shell in container", image: str = "nginx", **extra
) -> Event:
    record = {
        "time": format_time(ts),
        "rule": rule,
        "priority": extra.pop("priority", "Notice"),
        "output": extra.pop("output", f"{rule} at {ts} (container_id=abc{ts % 997})"),
        "hostname": extra.pop("hostname", "node-a"),
        "source": "syscall",
        "tags": ["container", "shell"],
        "output_fields": {
            "container.id": f"c{ts % 9973:x}",
            "container.image.repository": image,
            "proc.cmdline": "bash",
            "evt.time": ts * 1_000_000,
        },
        **extra,
    }
    (event,) = NORMALIZER.normalize(orjson.dumps(record), family="falco")
    return event


def prom(
    labels: dict,
    starts: int,
    status: str = "firing",
    ends: int | None = None,
    annotations: dict | None = None,
) -> Event:
    alert = {
        "status": status,
        "labels": labels,
        "annotations": annotations or {"summary": "something"},
        "startsAt": format_time(starts),
        "endsAt": format_time(ends) if ends is not None else "0001-01-01T00:00:00Z",
    }
    payload = {"version": "4", "status": status, "receiver": "vigil", "alerts": [alert]}
    (event,) = NORMALIZER.normalize(orjson.dumps(payload), family="alertmanager")
    return event


def fixture_events(fixtures_dir: Path, relative: str, family: str) -> list[Event]:
    path = fixtures_dir / relative
    if path.suffix == ".jsonl":
        chunks = [line for line in path.read_bytes().splitlines() if line.strip()]
    else:
        chunks = [path.read_bytes()]
    return [event for chunk in chunks for event in NORMALIZER.normalize(chunk, family=family)]


# ---- Alertmanager notification rules ----------------------------------------------------


def test_first_notification_comes_after_group_wait():
    h = Harness()
    h.feed(falco(T0))
    assert records(h.advance(T0 + 30 * S - 1)) == []
    (record,) = records(h.advance(T0 + 30 * S))
    assert record["notification"] == "firing" and record["status"] == "firing"
    assert record["time"] == format_time(T0 + 30 * S)
    assert record["first_seen"] == record["last_seen"] == format_time(T0)
    assert record["count"] == 1 and record["kind"] == "runtime"
    assert record["group_key"] == 'host:node-a:{alertname="Terminal shell in container"}'
    assert record["dedup_key"] == dedup_key(record["group_key"])


def test_alert_resolved_within_group_wait_sends_nothing():
    h = Harness()
    labels = {"alertname": "HighLatency", "service": "payments"}
    h.feed(prom(labels, T0), prom(labels, T0, "resolved", ends=T0 + 10 * S))
    assert records(h.advance(T0 + HOUR)) == []
    assert h.stage.accounting == Counter(inputs=2, folded=2)
    assert not [k for k in h.alerts if "|~scope|" not in k and h.alerts[k]["in_group"]]


def test_new_alert_in_a_group_waits_for_the_next_group_interval_tick():
    h = Harness(DedupConfig(resolve_timeout_ms=HOUR))
    h.feed(falco(T0, image="nginx"))
    assert brief(h.advance(T0 + 30 * S)) == [(30 * S, "nginx", "firing", 1)]
    h.feed(falco(T0 + MIN, image="redis"))
    assert records(h.advance(T0 + MIN + 30 * S)) == [], "no group_wait of its own"
    assert records(h.advance(T0 + 330 * S - 1)) == []
    assert sorted(brief(h.advance(T0 + 330 * S))) == [
        (330 * S, "nginx", "repeat", 1),
        (330 * S, "redis", "firing", 1),
    ]


def test_repeat_only_after_repeat_interval_checked_on_group_interval_ticks():
    h = Harness(DedupConfig(resolve_timeout_ms=HOUR))
    outputs = []
    for minute in range(9 * 60):
        outputs += h.feed(falco(T0 + minute * MIN))
    first = 30 * S
    # log time + 4h is itself a tick: "Before(now - repeat)" is false there, so the next one.
    repeat_at = first + 4 * HOUR + 5 * MIN
    assert brief(outputs) == [
        (first, "nginx", "firing", 1),
        (repeat_at, "nginx", "repeat", repeat_at // MIN + 1),
        (2 * repeat_at - first, "nginx", "repeat", (2 * repeat_at - first) // MIN + 1),
    ]


def test_resolved_notification_after_resolve_timeout_and_a_new_episode():
    h = Harness()
    h.feed(falco(T0))
    outputs = h.advance(T0 + HOUR)
    assert brief(outputs) == [(30 * S, "nginx", "firing", 1), (330 * S, "nginx", "resolved", 1)]
    resolved = records(outputs)[1]
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == "timeout"
    assert resolved["ends_at"] == format_time(T0 + 5 * MIN)
    # Fires again later: a new aggregation group, so group_wait again; the count goes on.
    outputs = h.feed(falco(T0 + 2 * HOUR))
    outputs += h.advance(T0 + 2 * HOUR + 30 * S)
    assert brief(outputs) == [(2 * HOUR + 30 * S, "nginx", "firing", 2)]


def test_ends_at_resolves_the_alert_once_the_watermark_passes_it():
    h = Harness()
    labels = {"alertname": "DiskFull", "instance": "node-b:9100"}
    h.feed(prom(labels, T0, ends=T0 + 2 * MIN))
    assert [r["notification"] for r in records(h.advance(T0 + 2 * MIN - 1))] == ["firing"]
    (state,) = [v for v in h.alerts.values() if v.get("t") == "alert"]
    assert state["status"] == "firing" and state["ends"] == T0 + 2 * MIN
    (resolved,) = records(h.advance(T0 + HOUR))
    assert resolved["time"] == format_time(T0 + 330 * S)
    assert resolved["resolved_by"] == "ends_at"
    assert resolved["ends_at"] == format_time(T0 + 2 * MIN)


def test_prom_alert_without_ends_at_resolves_explicitly_or_after_resolve_timeout():
    labels = {"alertname": "Down", "instance": "node-c:9100"}
    h = Harness()
    outputs = h.feed(prom(labels, T0), prom(labels, T0, "resolved", ends=T0 + MIN))
    (fired, resolved) = records(outputs + h.advance(T0 + HOUR))
    assert (fired["notification"], resolved["notification"]) == ("firing", "resolved")
    assert resolved["resolved_by"] == "explicit"
    assert resolved["fingerprint"] == alertmanager_fingerprint(labels)
    h = Harness()
    h.feed(prom(labels, T0))
    (_, resolved) = records(h.advance(T0 + HOUR))
    assert resolved["resolved_by"] == "timeout"


def test_all_resolved_and_send_resolved_off():
    h = Harness(DedupConfig(send_resolved=False))
    h.feed(falco(T0))
    assert brief(h.advance(T0 + HOUR)) == [(30 * S, "nginx", "firing", 1)]
    (group,) = h.groups.values()
    assert group["log"]["firing"] == [] and len(group["log"]["resolved"]) == 1, (
        "the all-resolved flush is logged even though nothing is sent"
    )
    h.feed(falco(T0 + 2 * HOUR))
    assert brief(h.advance(T0 + 3 * HOUR)) == [(2 * HOUR + 30 * S, "nginx", "firing", 2)]


def test_a_resolved_member_is_reported_with_the_still_firing_ones():
    h = Harness(DedupConfig(resolve_timeout_ms=10 * MIN))
    outputs = h.feed(falco(T0, image="nginx"), falco(T0 + 10 * S, image="redis"))
    for minute in range(1, 30):
        outputs += h.feed(falco(T0 + minute * MIN, image="redis"))
    notes = brief(outputs + h.advance(T0 + 30 * MIN))
    # nginx times out at 10:00, reported at the 10:30 tick beside redis (a repeat).
    assert (10 * MIN + 30 * S, "nginx", "resolved", 1) in notes
    assert (10 * MIN + 30 * S, "redis", "repeat", 11) in notes


def test_github_alert_fixed_resolves_and_a_lone_fix_leaves_no_state(fixtures_dir):
    created = fixture_events(fixtures_dir, "github/code_scanning_alert.created.json", "ci")
    fixed = fixture_events(fixtures_dir, "github/code_scanning_alert.fixed.json", "ci")
    h = Harness()
    h.feed(*fixed)
    h.advance(fixed[0].ts_ms + HOUR)
    assert not [v for v in h.alerts.values() if v.get("t") == "alert"]
    assert h.stage.accounting == Counter(inputs=1, folded=1)
    h = Harness()
    outputs = h.feed(*created)
    later = copy.deepcopy(fixed[0])
    later.ts_ms = max(later.ts_ms, created[0].ts_ms + MIN)
    outputs += h.feed(later)
    outputs += h.advance(later.ts_ms + HOUR)
    assert [(r["notification"], r["kind"]) for r in records(outputs)] == [
        ("firing", "finding"),
        ("resolved", "finding"),
    ]
    # Opened and fixed at the same instant (these fixtures share a timestamp), in either
    # arrival order: resolved within group_wait, so nothing is sent and nothing stays open.
    for order in (created + fixed, fixed + created):
        h = Harness(DedupConfig(slack_ms=MIN))
        outputs = h.feed(*order) + h.advance(created[0].ts_ms + HOUR)
        assert records(outputs) == []
        assert not [v for v in h.alerts.values() if v.get("status") == "firing"]


def test_anomaly_alerts_dedup_per_series():
    h = Harness()
    outputs = []
    for window in range(6):
        end = T0 + (window + 1) * MIN
        anomaly = {
            "id": event_id("anomaly", "s", end),
            "series": "service:payments|r|events",
            "entity": "service:payments",
            "kind": "rate",
            "name": "events",
            "time": format_time(end),
            "window_start": format_time(end - MIN),
            "window_end": format_time(end),
            "value": 40.0 + window,
            "expected": [5.0, 9.0],
            "score": 0.97,
            "explanation": "spike",
        }
        alert = alert_from_anomaly(anomaly)
        mark = end
        outputs += h._step(lambda a, g, al=alert, w=mark: h.stage.on_alert(al, w, a, g, h.schedule))
    outputs += h.advance(T0 + HOUR)
    notes = [(r["notification"], r["count"]) for r in records(outputs)]
    assert notes == [("firing", 1), ("resolved", 6)]
    assert records(outputs)[0]["kind"] == "anomaly"


# ---- fingerprints -----------------------------------------------------------------------


def test_fingerprints_are_stable_under_drifting_fields():
    a = alert_from_event(falco(T0, output="one", priority="Notice", uuid="u-1"))
    b = alert_from_event(falco(T0 + HOUR, output="two", priority="Critical", uuid="u-2"))
    assert a.fingerprint == b.fingerprint and a.labels == b.labels
    assert a.annotations != b.annotations
    assert alert_from_event(falco(T0, rule="Write below etc")).fingerprint != a.fingerprint
    assert alert_from_event(falco(T0, hostname="node-b")).fingerprint != a.fingerprint

    labels = {"alertname": "DiskFull", "instance": "node-b:9100", "severity": "warning"}
    p1 = alert_from_event(prom(labels, T0, annotations={"value": "91%"}))
    p2 = alert_from_event(prom(labels, T0 + MIN, ends=T0 + 9 * MIN, annotations={"value": "97%"}))
    assert p1.fingerprint == p2.fingerprint == alertmanager_fingerprint(labels)


def test_finding_fingerprint_ignores_severity_cvss_and_fixed_version(fixtures_dir):
    raw = orjson.loads((fixtures_dir / "trivy/alpine-39.json").read_bytes())
    before = [
        alert_from_event(e)
        for e in NORMALIZER.normalize(orjson.dumps(raw), family="scans")
        if e.type == "vulnerability"
    ]
    drifted = copy.deepcopy(raw)
    for vuln in drifted["Results"][0]["Vulnerabilities"]:
        vuln["Severity"] = "LOW"
        vuln["FixedVersion"] = "9.9.9-r0"
        vuln["CVSS"] = {"nvd": {"V3Score": 1.0, "V3Vector": "CVSS:3.1/AV:P"}}
        vuln["Title"] = "rewritten"
    drifted["CreatedAt"] = "2021-09-30T00:00:00Z"
    after = [
        alert_from_event(e)
        for e in NORMALIZER.normalize(orjson.dumps(drifted), family="scans")
        if e.type == "vulnerability"
    ]
    assert [a.fingerprint for a in before] == [a.fingerprint for a in after]
    assert [a.labels for a in before] == [a.labels for a in after]
    assert {a.labels["target"] for a in before} == {"os-pkgs"}
    assert "severity" not in before[0].labels and "cvss" not in before[0].labels


def test_group_key_uses_only_group_by_labels():
    labels = {"alertname": "X", "node": "n1", "pod": "p"}
    assert group_key("host:a", labels, ("alertname",)) == 'host:a:{alertname="X"}'
    assert group_key("host:a", labels, ("node", "missing")) == 'host:a:{node="n1"}'
    assert group_key("host:a", labels, ()) == "host:a:{}"
    assert group_key("host:a", labels, ("...",)) == 'host:a:{alertname="X", node="n1", pod="p"}'


# ---- the Falco fixture ------------------------------------------------------------------


def run_falco(events: list[Event], config: DedupConfig) -> tuple[Harness, list]:
    h = Harness(config)
    outputs = h.feed(*events)
    outputs += h.flush()
    return h, outputs


@pytest.fixture(scope="module")
def falco_fixture(fixtures_dir) -> list[Event]:
    events = fixture_events(fixtures_dir, "falco/falco-0.31.1-host-alerts.jsonl", "falco")
    assert len(events) == 215
    return sorted(events, key=lambda e: e.ts_ms)


def by_fingerprint(outputs) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = defaultdict(list)
    for record in records(outputs):
        grouped[record["fingerprint"]].append(record)
    return grouped


def check_notification_sequence(history: list[dict], repeat_ms: int) -> None:
    """firing, then repeats no sooner than repeat_interval, then resolved; and again."""
    previous = None
    for record in history:
        note = record["notification"]
        if previous is None or previous["notification"] == "resolved":
            assert note == "firing", history
        else:
            assert note in ("repeat", "resolved"), history
        if note == "repeat":
            assert parse_time(record["time"]) - parse_time(previous["time"]) > repeat_ms
        previous = record
    assert previous["notification"] == "resolved"


def test_falco_fixture_default_config(falco_fixture, capsys):
    config = DedupConfig()
    h, outputs = run_falco(falco_fixture, config)
    histories = by_fingerprint(outputs)
    distinct = {alert_from_event(e).fingerprint for e in falco_fixture}
    assert set(histories) == distinct and len(distinct) == 7
    assert len({r["group_key"] for r in records(outputs)}) == 7
    for history in histories.values():
        check_notification_sequence(history, config.repeat_interval_ms)
    assert sum(history[-1]["count"] for history in histories.values()) == 215
    acc = h.stage.accounting
    assert acc["inputs"] == 215
    assert acc["notified"] + acc["folded"] + acc["silenced"] + acc["inhibited"] == 215
    sent = len(records(outputs))
    assert sent <= 30, sent  # issue 22: 215 alerts fold into at most 30 notifications
    with capsys.disabled():
        print(
            f"\n[dedup] Falco fixture, default config: {sent} notification records for 215 "
            f"inputs, dedup ratio {sent / 215:.3f} ({dict(acc)})"
        )


def test_falco_fixture_one_firing_per_fingerprint_with_a_long_resolve_timeout(
    falco_fixture, capsys
):
    config = DedupConfig(resolve_timeout_ms=7 * 24 * HOUR)
    _, outputs = run_falco(falco_fixture, config)
    histories = by_fingerprint(outputs)
    first_seen = {}
    for event in falco_fixture:
        first_seen.setdefault(alert_from_event(event).fingerprint, event.ts_ms)
    for fingerprint, history in histories.items():
        assert [r["notification"] for r in history].count("firing") == 1
        assert history[0]["notification"] == "firing"
        assert parse_time(history[0]["time"]) == first_seen[fingerprint] + 30 * S
        check_notification_sequence(history, config.repeat_interval_ms)
    assert sum(history[-1]["count"] for history in histories.values()) == 215
    sent = len(records(outputs))
    with capsys.disabled():
        print(
            f"\n[dedup] Falco fixture, resolve_timeout 7d: {sent} notification records for "
            f"215 inputs, dedup ratio {sent / 215:.3f}"
        )


# ---- scanner findings -------------------------------------------------------------------


def test_second_trivy_scan_resolves_exactly_the_missing_findings(fixtures_dir):
    first_report = orjson.loads((fixtures_dir / "trivy/alpine-39.json").read_bytes())
    second_report = copy.deepcopy(first_report)
    vulns = second_report["Results"][0]["Vulnerabilities"]
    removed = [vulns.pop(4), vulns.pop(1)]  # CVE-2019-14697 (musl), CVE-2019-1551 (libcrypto)
    second_report["CreatedAt"] = format_time(parse_time(first_report["CreatedAt"]) + 24 * HOUR)
    first = NORMALIZER.normalize(orjson.dumps(first_report), family="scans")
    second = NORMALIZER.normalize(orjson.dumps(second_report), family="scans")
    gone_ids = {(v["VulnerabilityID"], v["PkgName"]) for v in removed}
    gone = {
        alert_from_event(e).fingerprint
        for e in first
        if e.type == "vulnerability"
        and (e.attributes["vulnerability_id"], e.attributes["pkg_name"]) in gone_ids
    }
    assert len(gone) == 2
    scan = resolutions_from_scan(second[-1])
    assert scan.scopes == {"trivy|ghcr.io/aquasecurity/trivy-test-images|os-pkgs"}

    h = Harness()
    outputs = h.feed(*first)
    outputs += h.advance(first[0].ts_ms + HOUR)
    fired = records(outputs)
    assert len(fired) == 6 and {r["notification"] for r in fired} == {"firing"}
    assert len({r["group_key"] for r in fired}) == 1, "one notification per image"
    outputs = h.feed(*second)
    outputs += h.advance(second[0].ts_ms + HOUR)
    notes = {r["fingerprint"]: r for r in records(outputs)}
    resolved = {fp for fp, r in notes.items() if r["status"] == "resolved"}
    assert resolved == gone
    assert all(notes[fp]["resolved_by"] == "scan" for fp in gone)
    assert {r["notification"] for fp, r in notes.items() if fp not in gone} == {"repeat"}
    assert all(r["count"] == 2 for fp, r in notes.items() if fp not in gone)
    # Findings never time out: days later nothing else happens.
    assert [
        r for r in records(h.advance(second[0].ts_ms + 3 * HOUR)) if r["status"] != "firing"
    ] == []


def test_an_older_scan_arriving_late_does_not_resolve_newer_findings(fixtures_dir):
    report = orjson.loads((fixtures_dir / "trivy/alpine-39.json").read_bytes())
    older = copy.deepcopy(report)
    older["Results"][0]["Vulnerabilities"] = []
    older["CreatedAt"] = format_time(parse_time(report["CreatedAt"]) - HOUR)
    h = Harness()
    h.feed(*NORMALIZER.normalize(orjson.dumps(report), family="scans"))
    h.feed(*NORMALIZER.normalize(orjson.dumps(older), family="scans"))
    outputs = h.advance(parse_time(report["CreatedAt"]) + HOUR)
    assert {r["status"] for r in records(outputs)} == {"firing"}


# ---- determinism, crashes, restarts -----------------------------------------------------


def values(outputs) -> list[tuple[str, str | None, dict]]:
    return [(o.topic, o.key, o.value) for o in outputs]


def test_replaying_the_same_input_gives_identical_outputs(falco_fixture):
    _, first = run_falco(falco_fixture, DedupConfig())
    _, second = run_falco(falco_fixture, DedupConfig())
    assert values(first) == values(second)
    ids = [r["id"] for r in records(first)]
    assert len(ids) == len(set(ids))


def test_any_arrival_order_within_the_slack_gives_identical_outputs(falco_fixture):
    config = DedupConfig(slack_ms=2 * MIN)
    _, reference = run_falco(falco_fixture, config)
    rng = random.Random(7)
    for _ in range(5):
        jitter = {e.id: rng.randrange(config.slack_ms) for e in falco_fixture}
        shuffled = sorted(falco_fixture, key=lambda e: e.ts_ms + jitter[e.id])
        assert shuffled != falco_fixture
        _, outputs = run_falco(shuffled, config)
        assert values(outputs) == values(reference)


def test_a_crash_before_commit_replays_the_same_outputs(falco_fixture):
    events = falco_fixture[:80]
    h = Harness()
    expected = h.feed(*events) + h.flush()
    crashed = Harness()
    outputs = []
    for offset, event in enumerate(events):
        if offset == 40:
            alerts, groups = StagedState(crashed.alerts), StagedState(crashed.groups)
            crashed.stage.on_event(event, event.ts_ms, alerts, groups, crashed.schedule)
            alerts.discard()
            groups.discard()
            # restart: in-memory schedule rebuilt from the committed tables
            crashed.schedule = TimerSchedule.rebuild(
                itertools.chain(crashed.alerts.items(), crashed.groups.items())
            )
        outputs += crashed.feed(event)
    outputs += crashed.flush()
    assert values(outputs) == values(expected)


def test_schedule_rebuilt_after_a_restart_continues_identically(falco_fixture):
    config = DedupConfig(resolve_timeout_ms=HOUR)
    _, expected = run_falco(falco_fixture, config)
    h = Harness(config)
    outputs = h.feed(*falco_fixture[:100])
    restarted = Harness(config)
    restarted.alerts, restarted.groups = h.alerts, h.groups
    restarted.watermark = h.watermark
    restarted.schedule = TimerSchedule.rebuild(itertools.chain(h.alerts.items(), h.groups.items()))
    outputs += restarted.feed(*falco_fixture[100:]) + restarted.flush()
    assert values(outputs) == values(expected)


def test_on_watermark_is_idempotent_and_state_stays_json(falco_fixture):
    h = Harness()
    h.feed(*falco_fixture[:50])
    h.advance(falco_fixture[49].ts_ms + HOUR)
    assert h.advance(falco_fixture[49].ts_ms + HOUR) == []
    orjson.dumps(h.alerts)
    orjson.dumps(h.groups)


def test_sarif_rescan_resolves_the_result_it_no_longer_reports(fixtures_dir):
    log = orjson.loads((fixtures_dir / "sarif/devskim-many-vuln.sarif.json").read_bytes())
    fixed = copy.deepcopy(log)
    dropped = fixed["runs"][0]["results"].pop(0)
    first = NORMALIZER.normalize(
        orjson.dumps({"sarif": log, "time": format_time(T0), "repository": "acme/payments"}),
        family="scans",
    )
    second = NORMALIZER.normalize(
        orjson.dumps(
            {"sarif": fixed, "time": format_time(T0 + HOUR), "repository": "acme/payments"}
        ),
        family="scans",
    )
    findings = [e for e in first if e.type == "sast_finding"]
    gone = {
        e.attributes["finding_key"]
        for e in findings
        if e.attributes["rule_id"] == dropped["ruleId"]
    } - {e.attributes.get("finding_key") for e in second}
    assert len(gone) == 1
    h = Harness()
    outputs = h.feed(*first) + h.feed(*second) + h.advance(T0 + 2 * HOUR)
    resolved = {r["fingerprint"] for r in records(outputs) if r["status"] == "resolved"}
    assert resolved == gone
    (record,) = [r for r in records(outputs) if r["status"] == "resolved"]
    assert record["resolved_by"] == "scan" and record["labels"]["tool"] == "devskim"


def test_ci_failure_fires_and_the_next_success_of_the_same_workflow_resolves_it():
    def run(ts: int, status: str, branch: str = "main") -> Event:
        return Event(
            id=event_id("test", ts, status, branch),
            source="github",
            type="ci_run",
            ts_ms=ts,
            entity="repo:acme/payments",
            severity="medium" if status == "failure" else "info",
            attributes={"ci_status": status, "workflow": "build", "branch": branch, "run_id": ts},
        )

    failed, passed = alert_from_event(run(T0, "failure")), alert_from_event(run(T0 + 1, "success"))
    assert failed.fingerprint == passed.fingerprint
    assert (failed.kind, failed.status, passed.status) == ("ci", "firing", "resolved")
    assert alert_from_event(run(T0, "in_progress")) is None
    assert alert_from_event(run(T0, "failure", "dev")).fingerprint != failed.fingerprint
    h = Harness()
    outputs = h.feed(run(T0, "failure"), run(T0 + 10 * MIN, "success")) + h.advance(T0 + HOUR)
    notes = [(r["notification"], r["resolved_by"]) for r in records(outputs)]
    assert notes == [("firing", None), ("resolved", "explicit")]
    # CI failures do not time out: with no success after it, a failure stays open.
    h = Harness()
    outputs = h.feed(run(T0, "failure")) + h.advance(T0 + 9 * HOUR)
    assert records(outputs)[-1]["status"] == "firing"
    assert [v["status"] for v in h.alerts.values()] == ["firing"]


# ---- repeats restate new evidence ---------------------------------------------------------


def _repeat_times(sightings: list[int], steps: list[int]) -> list[int]:
    """Repeat notification times of one Falco alert sighted at `sightings` (it never times
    out), the clock advanced through `steps`."""
    harness = Harness(DedupConfig(resolve_timeout_ms=365 * 24 * HOUR))
    outputs = []
    for watermark in sorted({*sightings, *steps}):
        if watermark in sightings:
            outputs += harness.feed(falco(watermark))
        outputs += harness.advance(watermark)
    return [parse_time(r["time"]) for r in records(outputs) if r["notification"] == "repeat"]


def test_an_alert_that_keeps_firing_repeats_every_repeat_interval():
    sightings = [T0 + n * 30 * MIN for n in range(25)]  # every 30 min for 12 hours
    times = _repeat_times(sightings, [T0 + n * MIN for n in range(12 * 60 + 1)])
    assert {b - a for a, b in itertools.pairwise(times)} == {4 * HOUR + 5 * MIN}
    assert len(times) == 2  # 4h05 and 8h10; 12h15 is past the last sighting's clock


def test_after_a_clock_jump_of_ten_intervals_it_notifies_once():
    interval = DedupConfig().repeat_interval_ms
    sightings = [T0, T0 + HOUR]  # sighted again after the first notification
    jump = T0 + 10 * interval + HOUR
    one_jump = _repeat_times(sightings, [jump])
    daily = _repeat_times(sightings, [T0 + d * 24 * HOUR for d in range(1, 3)] + [jump])
    assert len(one_jump) == 1 and one_jump == daily  # one repeat, whatever the clock steps,
    assert one_jump[0] < T0 + interval + 10 * MIN  # at its own time: 4h05 after group_wait
    assert _repeat_times([T0], [jump]) == []  # nothing new since the first notification


def test_open_findings_notify_when_they_change_not_on_a_repeat_interval(fixtures_dir):
    """A finding is state: it notifies when it opens and when a rescan resolves it, not every
    repeat_interval while it stays open (unless the findings' own interval is set)."""
    events = fixture_events(fixtures_dir, "trivy/alpine-39.json", "scans")
    findings = [e for e in events if alert_from_event(e) is not None]
    assert findings
    day = 24 * HOUR
    h = Harness()
    out = h.feed(*findings) + h.advance(findings[0].ts_ms + 30 * day)
    kinds = Counter(r["notification"] for r in records(out))
    assert kinds["repeat"] == 0 and kinds["firing"] == len({e.id for e in findings}), kinds
    reminded = Harness(DedupConfig(state_repeat_interval_ms=7 * day))
    out = reminded.feed(*findings)
    for n in range(1, 31):  # a daily rescan still lists them: the evidence a reminder restates
        rescan = [dataclasses.replace(e, ts_ms=e.ts_ms + n * day) for e in findings]
        out += reminded.feed(*rescan) + reminded.advance(findings[0].ts_ms + n * day)
    repeats = {parse_time(r["time"]) for r in records(out) if r["notification"] == "repeat"}
    assert len(repeats) == 4  # weekly reminders over 30 days


def test_inputs_waiting_for_the_clock_are_bounded_per_alert():
    h = Harness()
    h.watermark = T0  # the clock stays here: every sighting below is newer than it
    key = None
    for n in range(MAX_PENDING_INPUTS + 10):
        event = falco(T0 + (n + 1) * S)
        alerts, groups = StagedState(h.alerts), StagedState(h.groups)
        h.stage.receive_event(event, alerts, groups, h.schedule)
        alerts.commit()
        groups.commit()
        key = key or next(iter(h.alerts))
    record = h.alerts[key]
    assert spill.count(record, PENDING) == MAX_PENDING_INPUTS
    assert len(record["pend"]) <= INLINE_PENDING  # the rest waits in small spill records
    assert h.stage.stats["overflow"] == 10
    assert record["count"] == 10  # the ten oldest sightings applied, in order
    # The clock passes them all: every waiting input is applied, in order, and no spill
    # record is left behind.
    alerts, groups = StagedState(h.alerts), StagedState(h.groups)
    h.stage.on_watermark(T0 + (MAX_PENDING_INPUTS + 20) * S, alerts, groups, h.schedule)
    alerts.commit()
    groups.commit()
    record = h.alerts[key]
    assert record["count"] == MAX_PENDING_INPUTS + 10
    assert record["last_seen"] == T0 + (MAX_PENDING_INPUTS + 10) * S
    assert not record["pend"] and not record["spill"]
    assert [k for k in h.alerts if "~pend" in k] == []


class _CountingSchedule(TimerSchedule):
    """A timer schedule that fails a test instead of spinning (a timer re-armed in the past)."""

    def __init__(self, limit: int = 10_000) -> None:
        super().__init__()
        self.pops, self.limit = 0, limit

    def pop_due(self, clock: int):
        self.pops += 1
        assert self.pops < self.limit, f"{self.pops} timers fired: a timer keeps re-arming"
        return super().pop_due(clock)


def test_an_alert_past_retention_with_a_newer_input_waiting_starts_afresh():
    """The alert resolved, its retention passed while its next sighting (30 days later) still
    waits for the clock: the sighting starts a new alert, as if the old record were gone."""
    day = 24 * HOUR
    h = Harness()
    h.schedule = _CountingSchedule()
    first = h.feed(falco(T0))
    first += h.advance(T0 + HOUR)
    assert [r["notification"] for r in records(first)] == ["firing", "resolved"]
    later = falco(T0 + 30 * day)
    alerts, groups = StagedState(h.alerts), StagedState(h.groups)
    h.stage.receive_event(later, alerts, groups, h.schedule)
    alerts.commit()
    groups.commit()
    assert records(h.advance(later.ts_ms - 1)) == []  # retention fired; the sighting waits
    (state,) = (v for k, v in h.alerts.items() if "~scope" not in k)
    assert state["count"] == 0 and state["status"] is None and len(state["pend"]) == 1
    again = records(h.advance(later.ts_ms + HOUR))
    assert [(r["notification"], r["count"]) for r in again] == [("firing", 1), ("resolved", 1)]
    assert again[0]["first_seen"] == format_time(later.ts_ms)
