"""Risk signals and the risk stage (tables/risk/signals.py, tables/risk/stage.py,
tables/risk/model.py): service resolution, per-item points, decay in event time, exact
contributions, emission rules, determinism under reordering of equal times, and replays after a
crash."""

from __future__ import annotations

import copy
import itertools
import random
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.model.events import event_id
from app.model.outputs import Output
from app.runtime.risk_clock import tick_signal
from app.runtime.staged import StagedState, owned_by
from app.sources.normalize import Normalizer
from tables.alerts.scoring import grype_risk
from tables.risk.model import (
    CATEGORIES,
    ZETA,
    RiskConfig,
    allocate,
    assess,
    change_failure,
    ci_metrics,
    criticality_update,
    new_subject,
    parse_weights,
)
from tables.risk.scorecards import gate
from tables.risk.signals import (
    derive_service,
    finding_points,
    pod_workload,
    signal_outputs,
    signals_from,
)
from tables.risk.stage import RiskSchedule
from tests.unit.risk.risk_helpers import (
    CATALOGUE,
    DAY,
    HOUR,
    MIN,
    PAYMENTS_IMAGE,
    T0,
    Harness,
    alert_record,
    ci_event,
    deployment_event,
    falco_alert,
    kev_finding,
    push_event,
    values,
)

# ---- signals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "service"),
    [
        ("service:payments", "payments"),
        ("image:registry.example.com/team/payments", "payments"),
        ("image:registry.example.com:5000/payments:1.2@sha256:abc", "payments"),
        ("repo:acme/payments", "payments"),
        ("k8s:prod/pods/payments-7c5d9b8f4d-x2kqz", "payments"),
        ("k8s:prod/deployments/checkout", "checkout"),
        ("k8s:prod/statefulsets/db", "db"),
        ("pod:prod/db-0", "db"),
        ("pod:prod/node-exporter-x2k4q", "node-exporter"),
        ("k8s:_cluster/clusterrolebindings/admin", None),
        ("k8s:prod/secrets/db-creds", None),
        ("host:node-a", None),
        ("aws:123456789012/iam/user", None),
        ("tf:aws_security_group.web", None),
        ("alert:Watchdog", None),
    ],
)
def test_derive_service(entity, service):
    assert derive_service(entity) == service


def test_pod_workload_keeps_names_that_are_not_suffixes():
    assert pod_workload("payments-admin") == "payments-admin"  # 'admin' has vowels
    assert pod_workload("payments-7c5d9b8f4d-x2kqz") == "payments"


def test_finding_points_follow_grype():
    record = kev_finding("firing", T0).value
    (signal,) = [s for s in signals_from(None, [kev_finding("firing", T0)], CATALOGUE)]
    expected = grype_risk(0.97, True, None, "CRITICAL", 10.0)
    assert signal["points_input"] == pytest.approx(expected)
    assert record["factors"]["grype_risk"] == pytest.approx(expected, abs=0.01)
    # Without EPSS or KEV: the type's threat prior times Grype's severity term.
    assert finding_points({"severity": 0.9}, "Vulnerability", "critical") == pytest.approx(9.0)
    assert finding_points({}, "ExposedSecret", "high") == pytest.approx(37.5)


def test_alert_signals_reach_workload_node_and_cluster():
    signals = signals_from(None, [kev_finding("firing", T0), falco_alert("firing", T0)], CATALOGUE)
    by_subject = {(s["service"], s["kind"]): s for s in signals}
    finding = by_subject[("payments", "finding")]
    assert finding["status"] == "open"
    assert finding["entity_type"] == "service"
    assert (finding["criticality"], finding["exposure"]) == ("critical", "internet")
    assert finding["details"]["kev"] is True
    assert finding["details"]["vulnerability_id"] == "CVE-2021-44228"
    # A Falco alert on node-a inside a payments container: the workload, the node's own
    # service in the catalogue, and the cluster aggregate.
    incident = by_subject[("payments", "incident")]
    assert incident["entity"] == "host:node-a"
    assert incident["points_input"] == pytest.approx(81.0)  # 100 × 0.9 (critical) × 0.9
    assert ("cluster-nodes", "incident") in by_subject
    assert by_subject[("cluster:default", "incident")]["entity_type"] == "cluster"
    assert len({s["id"] for s in signals}) == len(signals)
    assert signals == signals_from(
        None, [kev_finding("firing", T0), falco_alert("firing", T0)], CATALOGUE
    )


def test_resolved_alerts_close_and_ci_and_anomaly_alerts_are_skipped():
    (closed,) = signals_from(None, [kev_finding("resolved", T0)], CATALOGUE)
    assert closed["status"] == "closed"
    skipped = [
        alert_record("ci", "firing", "repo:acme/payments", "fp-ci", T0, "medium", {}),
        alert_record("anomaly", "firing", "service:payments", "fp-an", T0, "medium", {}),
    ]
    assert signals_from(None, skipped, CATALOGUE) == []


def test_unknown_entities_and_aggregates():
    record = alert_record(
        "violation",
        "firing",
        "aws:123456789012/iam/user/mallory",
        "fp-ct",
        T0,
        "high",
        {"alertname": "CloudTrailRisk", "reason": "iam_admin"},
        {"confidence": 0.8},
    )
    (signal,) = signals_from(None, [record], CATALOGUE)
    assert (signal["service"], signal["entity_type"]) == ("account:123456789012", "account")
    assert signal["kind"] == "violation"
    event = ci_event("failure", T0, 1, "a" * 40, repo="acme/ledger")
    subjects = {(s["service"], s["entity_type"]) for s in signals_from(event, [], CATALOGUE)}
    assert subjects == {("ledger", "service"), ("repo:acme/ledger", "repository")}
    assert (subjects - {("ledger", "service")}) == {("repo:acme/ledger", "repository")}


def test_anomaly_and_drift_signals():
    anomaly = Output(
        "anomalies",
        "service:checkout|r|http_5xx",
        {
            "id": "an-1",
            "series": "service:checkout|r|http_5xx",
            "entity": "service:checkout",
            "kind": "rate",
            "name": "http_5xx",
            "time": "2024-03-01T12:01:00.000Z",
            "score": 0.995,
            "value": 40.0,
        },
    )
    drift = Output(
        "drift",
        "tf:aws_security_group.payments_ingress",
        {
            "id": "d-1",
            "resource": "tf:aws_security_group.payments_ingress",
            "status": "drifted",
            "paths": ["ingress"],
            "time": "2024-03-01T12:02:00.000Z",
            "service": "payments",
        },
    )
    signals = signals_from(None, [anomaly, drift], CATALOGUE)
    by_kind = {s["kind"]: s for s in signals}
    assert by_kind["anomaly"]["service"] == "checkout"
    assert by_kind["anomaly"]["status"] == "transient"
    assert by_kind["anomaly"]["severity"] == "high"
    assert by_kind["anomaly"]["points_input"] == pytest.approx(100 * 0.75 * 0.995)
    assert by_kind["drift"]["service"] == "payments"
    assert by_kind["drift"]["status"] == "open"


def test_ci_deployment_and_change_signals():
    sha = "c" * 40
    signals = signals_from(ci_event("failure", T0, 7, sha), [], CATALOGUE)
    ci = next(s for s in signals if s["service"] == "payments")
    assert (ci["kind"], ci["status"]) == ("ci", "open")
    assert ci["points_input"] == pytest.approx(30.0)
    assert ci["details"]["run_key"] == "repo:acme/payments|run|7|1"
    deploy_run = ci_event("success", T0, 8, sha, workflow="Deploy to production")
    kinds = sorted(s["kind"] for s in signals_from(deploy_run, [], CATALOGUE))
    assert kinds == ["ci", "ci", "deployment", "deployment"]
    deployment = signals_from(deployment_event("success", T0, 42, sha), [], CATALOGUE)
    assert {s["key"] for s in deployment} == {"repo:acme/payments|deployment:42"}
    assert deployment[0]["details"]["state"] == "success"
    change = signals_from(push_event(T0, sha, 12), [], CATALOGUE)
    assert change[0]["kind"] == "change"
    assert change[0]["details"]["files_added"] == 12
    outputs = signal_outputs(change)
    assert [(o.topic, o.key) for o in outputs] == [
        ("risk_signals", "payments"),
        ("risk_signals", "repo:acme/payments"),
    ]


def test_signals_from_real_webhooks(fixtures_dir: Path):
    normalizer = Normalizer()
    seen = {}
    for name in (
        "github/workflow_run.completed.failure.json",
        "github/workflow_job.completed.success.json",
        "github/deployment_status.created.success.json",
        "github/push.json",
        "gitlab/deployment.json",
        "gitlab/pipeline.json",
        "gitlab/merge_request.json",
        "gitlab/push.json",
    ):
        raw = (fixtures_dir / name).read_bytes()
        for event in normalizer.normalize(raw, family="ci"):
            for signal in signals_from(event, [], None):
                seen.setdefault(name, set()).add((signal["kind"], signal["status"]))
                assert signal["service"] and signal["time_ms"] == event.ts_ms
    assert ("ci", "open") in seen["github/workflow_run.completed.failure.json"]
    assert ("ci", "closed") in seen["github/workflow_job.completed.success.json"]
    assert ("deployment", "transient") in seen["github/deployment_status.created.success.json"]
    assert ("deployment", "transient") in seen["gitlab/deployment.json"]
    assert "github/push.json" not in seen  # a tag deletion changes nothing
    assert ("change", "transient") in seen["gitlab/push.json"]
    assert ("change", "transient") in seen["gitlab/merge_request.json"]


# ---- model --------------------------------------------------------------------------------


def _state_with(items: dict, entity_type: str = "cluster") -> dict:
    state = new_subject("s", entity_type)
    state["items"] = items
    return state


def test_decay_math():
    config = RiskConfig(half_life_ms=6 * HOUR)
    closed = {"c": "incidents", "m": "decay", "o": T0, "x": T0 + HOUR, "tr": None, "p": 80.0}
    state = _state_with({"incident|a": closed})
    # one item of 80: base = 80 / ζ(1.5) (aggregate: M = 1, weight 1)
    assert assess(state, T0 + HOUR, config).raw == pytest.approx(80 / ZETA)
    assert assess(state, T0 + 7 * HOUR, config).raw == pytest.approx(40 / ZETA)  # a half-life
    assert assess(state, T0 + 13 * HOUR, config).raw == pytest.approx(20 / ZETA)
    anomaly = {"c": "anomalies", "m": "decay", "o": None, "x": None, "tr": T0, "p": 60.0}
    state = _state_with({"anomaly|b": anomaly})
    assert assess(state, T0 + 6 * HOUR, config).raw == pytest.approx(0.5 * 30.0 / ZETA)
    finding = {"c": "findings", "m": "hold", "o": T0, "x": None, "tr": None, "p": 50.0}
    state = _state_with({"finding|c": finding})
    assert assess(state, T0 + 30 * DAY, config).score == round(50 / ZETA)  # open findings hold
    finding["x"] = T0 + DAY
    assert assess(state, T0 + DAY, config).score == 0  # and vanish once resolved


def _open(category: str, points: float) -> dict:
    return {"c": category, "m": "hold", "o": T0, "x": None, "tr": None, "p": points}


def test_ranked_sum_and_criticality_odds():
    items = {"finding|a": _open("findings", 50.0), "finding|b": _open("findings", 50.0)}
    state = _state_with(items, entity_type="service")
    state["info"] = {"criticality": "medium", "exposure": "internal"}
    result = assess(state, T0, RiskConfig())
    base = (50 + 50 / 2**1.5) / ZETA  # the second-ranked item counts 1 / 2^1.5
    assert result.factors["base"] == pytest.approx(base, abs=1e-4)
    odds = 0.8 * base / (100 - base)  # medium × internal = 0.8, applied to the odds
    assert result.raw == pytest.approx(100 * odds / (1 + odds))
    assert result.contributions[0]["count"] == 2
    state["info"] = {"criticality": "critical", "exposure": "internet"}
    critical = assess(state, T0, RiskConfig())
    assert result.score < critical.score < 100  # 1.5 on the odds: higher, never capped


def test_many_low_risks_never_reach_one_critical():
    critical = _state_with({"finding|kev": _open("findings", 99.75)})
    one = assess(critical, T0, RiskConfig()).raw
    lows = {f"incident|{i}": _open("incidents", 30.0) for i in range(1000)}
    many = assess(_state_with(lows), T0, RiskConfig()).raw
    assert many < 30.0 < one  # a thousand lows approach their own 30, the KEV finding 38
    both = dict(lows, **{"finding|kev": _open("findings", 99.75)})
    assert assess(_state_with(both), T0, RiskConfig()).raw > one


def test_criticality_update_bounds():
    assert criticality_update(0.0, 1.5) == 0.0
    assert criticality_update(100.0, 0.6) == 100.0
    assert criticality_update(50.0, 1.0) == pytest.approx(50.0)
    assert criticality_update(50.0, 1.5) == pytest.approx(60.0)


def test_allocate_is_exact_and_stable():
    assert allocate(10, {"a": 1, "b": 1, "c": 1}, "abc") == {"a": 4, "b": 3, "c": 3}
    assert allocate(0, {"a": 1}, "a") == {"a": 0}
    assert allocate(7, {"a": 0, "b": 0}, "ab") == {"a": 0, "b": 0}
    parts = allocate(97, {"a": 0.1, "b": 2.5, "c": 1e-9}, "abc")
    assert sum(parts.values()) == 97


def test_ci_metrics_flaky_and_rate():
    harness = Harness()
    sha = "f" * 40
    events = [
        ci_event("failure", T0, 1, sha, kind="ci_job", job="unit-tests"),
        ci_event("success", T0 + MIN, 1, sha, attempt=2, kind="ci_job", job="unit-tests"),
        ci_event("failure", T0 + 2 * MIN, 5, "e" * 40),
        ci_event("success", T0 + 3 * MIN, 6, "d" * 40),
    ]
    for event in events:
        harness.feed([s for s in signals_from(event, [], CATALOGUE) if s["service"] == "payments"])
    state = harness.current("payments")
    metrics = ci_metrics(state, T0 + 4 * MIN, harness.config)
    assert (metrics["runs"], metrics["failures"], metrics["rate"]) == (2, 1, 0.5)
    assert metrics["flaky"] == {"repo:acme/payments|CI|unit-tests": 1}
    assert metrics["points"] == pytest.approx(50.0 * 1 / (2 + 2))
    assert ci_metrics(state, T0 + 2 * DAY, harness.config)["runs"] == 0  # out of the window


def test_change_failure_rate_counts_incidents_after_deployments():
    harness = Harness()
    signals = []
    for i in range(4):
        t = T0 + i * DAY
        event = deployment_event("failure" if i == 3 else "success", t, 100 + i, f"{i:040x}")
        signals += signals_from(event, [], CATALOGUE)
    # An incident 2 h after the first deployment; one before any deployment (not counted).
    signals += signals_from(None, [falco_alert("firing", T0 + 2 * HOUR)], CATALOGUE)
    late = falco_alert("resolved", T0 + 3 * HOUR).value
    signals += signals_from(None, [Output("alerts", "x", late)], CATALOGUE)
    other = alert_record(
        "prom",
        "firing",
        "service:payments",
        "fp-prom",
        T0 - HOUR,
        "high",
        {"alertname": "HighErrorRate"},
        {"confidence": 0.9},
    )
    signals += signals_from(None, [other], CATALOGUE)
    harness.feed(sorted((s for s in signals if s["service"] == "payments"), key=_order))
    cfr = change_failure(harness.current("payments"), T0 + 4 * DAY, harness.config)
    assert (cfr["deployments"], cfr["failed"]) == (4, 2)
    assert cfr["rate"] == 0.5
    assert cfr["points"] == pytest.approx(100 * 2 / 6)
    staging = RiskConfig(production_environments=("staging",))
    assert change_failure(harness.current("payments"), T0 + 4 * DAY, staging)["deployments"] == 0


def _order(signal: dict) -> tuple:
    return (signal["time_ms"], signal["id"])


# ---- stage --------------------------------------------------------------------------------


def _scenario_signals() -> list[dict]:
    sha = "a" * 40
    outputs = [kev_finding("firing", T0), falco_alert("firing", T0 + 10 * 1000)]
    signals = signals_from(None, outputs, CATALOGUE)
    signals += signals_from(ci_event("failure", T0 + 20 * 1000, 1, sha), [], CATALOGUE)
    later = [kev_finding("resolved", T0 + HOUR), falco_alert("resolved", T0 + HOUR)]
    signals += signals_from(None, later, CATALOGUE)
    signals += signals_from(ci_event("success", T0 + HOUR, 2, "b" * 40), [], CATALOGUE)
    return sorted(signals, key=_order)


def test_stage_emits_first_change_decay_and_periodic():
    harness = Harness(RiskConfig(emit_period_ms=2 * HOUR, emit_delta=2))
    outputs = harness.feed(_scenario_signals())
    outputs += harness.feed([tick_signal("p0", T0 + 2 * DAY)])
    risk = [v for v in values(outputs, "risk") if v["entity"] == "payments"]
    assert risk[0]["reason"] == "first"
    assert 40 <= risk[0]["score"] < 100  # a KEV finding and a firing alert: high, not capped
    assert risk[0]["entity_type"] == "service"
    reasons = {v["reason"] for v in risk}
    assert {"first", "periodic", "decay"} <= reasons
    scores = [v["score"] for v in risk if v["time_ms"] >= T0 + HOUR]
    assert scores == sorted(scores, reverse=True)  # resolved: it only decays
    assert risk[-1]["score"] < 5
    for previous, record in itertools.pairwise(risk):
        moved = abs(record["score"] - previous["score"]) > harness.config.emit_delta
        assert moved or record["reason"] == "periodic"
        assert record["previous_score"] == previous["score"]
    times = [v["time_ms"] for v in risk]
    assert times == sorted(times)
    assert all(t % harness.config.check_interval_ms == 0 for t in times[3:])


def test_periodic_emissions_stop_once_the_score_is_zero():
    harness = Harness(RiskConfig(emit_period_ms=15 * MIN))
    signals = signals_from(None, [falco_alert("firing", T0)], CATALOGUE)
    signals += signals_from(None, [falco_alert("resolved", T0 + MIN)], CATALOGUE)
    harness.feed(sorted([s for s in signals if s["service"] == "payments"], key=_order))
    outputs = harness.tick(T0 + 10 * DAY)
    outputs += harness.tick(T0 + 20 * DAY)
    assert values(outputs, "risk")[-1]["score"] == 0
    assert values(harness.tick(T0 + 30 * DAY), "risk") == []
    assert harness.current("payments")["due"] is None


def _repo_signal(i: int, kind: str, points: float) -> dict:
    """An open, high signal of `kind` on repo:acme/x at T0 + i minutes."""
    return {
        "id": f"s{i}-{kind}",
        "service": "repo:acme/x",
        "entity_type": "repository",
        "entity": "repo:acme/x",
        "kind": kind,
        "key": f"k{i}",
        "status": "open",
        "points_input": points,
        "severity": "high",
        "time_ms": T0 + i * MIN,
        "details": {},
    }


def test_emission_threshold():
    config = RiskConfig(emit_delta=5, emit_period_ms=24 * HOUR)
    harness = Harness(config)

    outputs = harness.feed(
        [
            _repo_signal(0, "finding", 50),
            _repo_signal(1, "finding", 20),
            _repo_signal(2, "finding", 20),
        ]
    )
    outputs += harness.feed([_repo_signal(3, "finding", 30), _repo_signal(4, "finding", 5)])
    outputs += harness.feed([tick_signal("p0", T0 + 10 * MIN)])
    risk = values(outputs, "risk")
    # base = Σ w_i / i^1.5 / ζ(1.5) over the ranked points: 50 -> 19 (first), + 20 -> 22 (no),
    # + 20 -> 23 (moved 4: no), + 30 -> 26 (moved 7: yes), + 5 -> 26 (no).
    assert [(v["score"], v["reason"]) for v in risk] == [(19, "first"), (26, "change")]
    assert risk[1]["time_ms"] == T0 + 3 * MIN


def test_determinism_same_input_twice_and_shuffled_equal_times():
    signals = _random_signals(random.Random(7), 300)
    first = _run(signals)
    assert first == _run(copy.deepcopy(signals))
    rnd = random.Random(11)
    for _ in range(3):
        shuffled = _shuffle_equal_times(signals, rnd)
        assert shuffled != signals
        assert _run(shuffled) == first


def test_crash_before_commit_replays_the_same_outputs():
    signals = _scenario_signals()
    reference = Harness()
    expected = [reference.feed([s]) for s in signals]
    harness = Harness()
    for n, signal in enumerate(signals):
        staged = StagedState(harness.table, owner=0)
        harness.clock.on_signal(signal, 0, staged)
        staged.discard()  # the send failed: nothing committed
        harness.clock.forget_schedules()
        staged = StagedState(harness.table, owner=0)
        outputs = harness.clock.on_signal(signal, 0, staged)
        staged.commit()
        assert outputs == expected[n]
    assert harness.table == reference.table


def test_duplicate_signals_at_new_offsets_change_nothing():
    signals = _scenario_signals()
    once, twice = Harness(), Harness()
    once.feed(signals)
    twice.feed([s for signal in signals for s in (signal, copy.deepcopy(signal))])
    for key in ("payments", "repo:acme/payments", "cluster:default"):
        a, b = once.table[key], twice.table[key]
        for field in ("items", "runs", "deploys", "incidents", "changes", "emit", "clock"):
            assert a[field] == b[field], (key, field)


def test_old_signals_beyond_retention_are_ignored():
    harness = Harness()
    harness.feed(signals_from(None, [kev_finding("firing", T0 + 10 * DAY)], CATALOGUE))
    harness.tick(T0 + 10 * DAY + 1)  # the clock passed the finding: a signal at T0 is late
    harness.feed(signals_from(None, [falco_alert("firing", T0)], CATALOGUE))
    assert harness.stage.stats["too_old"] >= 1
    assert not any(k.startswith("incident|") for k in harness.current("payments")["items"])


def test_schedule_rebuilds_from_the_table():
    harness = Harness()
    harness.feed(_scenario_signals()[:3])
    rebuilt = RiskSchedule.rebuild(owned_by(harness.table.items(), 0))
    assert len(rebuilt) == sum(
        1 for v in harness.table.values() if v.get("t") == "risk" and v.get("due") is not None
    )
    assert len(RiskSchedule.rebuild(owned_by(harness.table.items(), 1))) == 0
    fresh_h = Harness(harness.config, CATALOGUE)
    fresh_h.table = copy.deepcopy(harness.table)
    harness.clock.forget_schedules()
    assert values(fresh_h.tick(T0 + DAY), "risk") == values(harness.tick(T0 + DAY), "risk")


def test_flush_evaluates_dirty_subjects():
    harness = Harness()
    harness.feed(signals_from(None, [kev_finding("firing", T0)], CATALOGUE))
    harness.feed(signals_from(None, [falco_alert("firing", T0)], CATALOGUE))
    outputs = harness.flush()
    assert {v["entity"] for v in values(outputs, "risk")} >= {"payments", "cluster-nodes"}
    assert harness.flush() == []
    assert not any(v.get("dirty") for v in harness.table.values() if v.get("t") == "risk")


# ---- property: contributions add up ----------------------------------------------------------

KINDS = ("finding", "incident", "violation", "drift", "anomaly", "ci", "deployment", "change")
SUBJECTS = (("payments", "service"), ("search", "service"), ("cluster:default", "cluster"))


def _signal(i, kind, status, subject, t, points, severity, key) -> dict:
    name, entity_type = subject
    if kind in ("anomaly", "deployment", "change"):
        status = "transient"
    details: dict = {}
    if kind == "ci":
        details = {
            "run_key": f"r|run|{key}|{i % 3}",
            "name": f"wf{key}",
            "commit_sha": f"{key % 2:040x}",
            "branch": "main",
        }
    elif kind == "deployment":
        states = ("success", "failure", "in_progress")
        details = {"state": states[i % 3], "commit_sha": f"{key:040x}", "environment": "prod"}
    elif kind == "change":
        details = {"commit_sha": f"{key:040x}", "files_added": 3 + i % 90}
    elif kind == "finding":
        details = {"kev": bool(i % 2), "vulnerability_id": f"CVE-{key}"}
    return {
        "id": event_id("test_signal", i),
        "service": name,
        "entity_type": entity_type,
        "entity": "repo:acme/x",
        "kind": kind,
        "key": str(key),
        "status": status,
        "points_input": points,
        "severity": severity,
        "time_ms": t,
        "details": details,
        "criticality": "critical" if name == "payments" else None,
        "exposure": "internet" if name == "payments" else None,
    }


def _random_signals(rnd: random.Random, count: int) -> list[dict]:
    signals, t = [], T0
    for i in range(count):
        t += rnd.choice((0, 0, 1000, MIN, 7 * MIN, HOUR, 9 * HOUR))
        signals.append(
            _signal(
                i,
                rnd.choice(KINDS),
                rnd.choice(("open", "closed")),
                rnd.choice(SUBJECTS),
                t,
                round(rnd.uniform(0, 100), 2),
                rnd.choice(("low", "medium", "high", "critical")),
                rnd.randrange(6),
            )
        )
    return signals


def _shuffle_equal_times(signals: list[dict], rnd: random.Random) -> list[dict]:
    groups: dict[int, list[dict]] = {}
    for signal in signals:
        groups.setdefault(signal["time_ms"], []).append(signal)
    out = []
    for t in sorted(groups):
        group = groups[t][:]
        rnd.shuffle(group)
        out += group
    return out


def _run(signals: list[dict]) -> list[bytes]:
    harness = Harness()
    outputs = harness.feed(signals)
    outputs += harness.feed([tick_signal("end", signals[-1]["time_ms"] + 3 * DAY)])
    outputs += harness.flush()
    return [orjson.dumps([o.topic, o.key, o.value], option=orjson.OPT_SORT_KEYS) for o in outputs]


signal_strategy = st.builds(
    lambda kind, status, subject, dt, points, severity, key: (
        kind,
        status,
        subject,
        dt,
        points,
        severity,
        key,
    ),
    st.sampled_from(KINDS),
    st.sampled_from(("open", "closed")),
    st.sampled_from(SUBJECTS),
    st.sampled_from((0, 0, 1000, MIN, 13 * MIN, 5 * HOUR, 2 * DAY)),
    st.floats(0, 100),
    st.sampled_from(("info", "low", "medium", "high", "critical")),
    st.integers(0, 5),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(signal_strategy, min_size=1, max_size=40), st.integers(0, 3 * DAY))
def test_contributions_add_up_to_every_score(entries, gate_offset):
    signals, t = [], T0
    for i, (kind, status, subject, dt, points, severity, key) in enumerate(entries):
        t += dt
        signals.append(_signal(i, kind, status, subject, t, points, severity, key))
    harness = Harness()
    outputs = harness.feed(signals)
    outputs += harness.tick(t + gate_offset)
    outputs += harness.flush()
    for record in values(outputs, "risk") + values(outputs, "scorecards"):
        assert 0 <= record["score"] <= 100
        assert sum(c["points"] for c in record["contributions"]) == record["score"]
        assert all(c["points"] >= 0 and c["factor"] in CATEGORIES for c in record["contributions"])
    for name, _ in SUBJECTS:
        state = harness.table.get(name)
        answer = gate(state, {"lines_changed": gate_offset % 5000}, t + gate_offset, harness.config)
        assert sum(c["points"] for c in answer["contributions"]) == answer["score"]
        assert answer["decision"] in ("allow", "warn", "block")


def test_risk_records_only_on_the_risk_topic_keyed_by_subject():
    harness = Harness()
    outputs = harness.feed(_scenario_signals())
    assert {o.topic for o in outputs} <= {"risk", "scorecards"}
    assert all(o.key == o.value["entity"] for o in outputs if o.topic == "risk")
    assert PAYMENTS_IMAGE  # imported for the scenario builders


def test_config_validation_and_weights():
    assert parse_weights("anomalies=0.2, change=1")["anomalies"] == 0.2
    assert parse_weights("")["findings"] == 1.0
    with pytest.raises(ValueError):
        parse_weights("vibes=1")
    with pytest.raises(ValueError):
        RiskConfig(emit_period_ms=7 * MIN, check_interval_ms=5 * MIN)
    with pytest.raises(ValueError):
        RiskConfig(weights={"findings": 2.0})
    with pytest.raises(ValueError):
        RiskConfig(warn_score=90, block_score=80)


def test_on_tick_without_partition_and_item_cap():
    harness = Harness(RiskConfig(max_items=3, emit_delta=0))
    signals = [
        _signal(i, "finding", "open", SUBJECTS[2], T0 + i * MIN, 10.0 + i, "high", i)
        for i in range(6)
    ]
    harness.feed(signals)
    staged = StagedState(harness.table, owner=0)
    outputs = harness.clock.on_tick(T0 + HOUR, staged)
    staged.commit()
    assert values(outputs, "risk")
    items = harness.current("cluster:default")["items"]
    assert sorted(items) == ["finding|3", "finding|4", "finding|5"]  # the highest points kept


def test_emits_when_new_signals_change_the_top_contributor():
    harness = Harness(RiskConfig(emit_delta=20))

    outputs = harness.feed([_repo_signal(0, "finding", 50)])
    outputs += harness.feed([_repo_signal(1, "incident", 55)])  # moves the score by 9 only
    outputs += harness.feed([_repo_signal(2, "finding", 10)])  # neither moves it nor the top
    outputs += harness.feed([tick_signal("p0", T0 + 10 * MIN)])
    risk = values(outputs, "risk")
    tops = [(v["reason"], v["contributions"][0]["factor"]) for v in risk]
    assert tops == [("first", "findings"), ("change", "incidents")]
