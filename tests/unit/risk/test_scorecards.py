"""Deployment scorecards and the change gate (tables/risk/scorecards.py) over the risk stage's
state: the acceptance scenario (KEV + critical Falco + failing CI -> block; fixed, resolved,
decayed -> allow), per-reason rules and exact contributions."""

from __future__ import annotations

import pytest

from app.catalogue import Catalogue
from app.model.outputs import Output
from app.runtime.risk_clock import tick_signal
from tables.risk.model import ZETA, RiskConfig
from tables.risk.scorecards import gate, scorecard
from tables.risk.signals import signals_from
from tests.unit.risk.risk_helpers import (
    CATALOGUE,
    DAY,
    HOUR,
    MIN,
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

SHA_BAD, SHA_FIX = "a" * 40, "b" * 40


def _feed(harness: Harness, event=None, outputs=(), catalogue=CATALOGUE) -> list:
    signals = signals_from(event, list(outputs), catalogue)
    return harness.feed(sorted(signals, key=lambda s: (s["time_ms"], s["id"])))


def _codes(answer: dict) -> list[str]:
    return [reason["code"] for reason in answer["reasons"]]


def _adds_up(answer: dict) -> bool:
    return sum(c["points"] for c in answer["contributions"]) == answer["score"]


def test_acceptance_block_then_allow_after_fix_and_decay():
    config = RiskConfig()
    harness = Harness(config)
    _feed(harness, outputs=[kev_finding("firing", T0)])
    _feed(harness, outputs=[falco_alert("firing", T0 + 30 * 1000)])
    _feed(harness, ci_event("failure", T0 + MIN, 1, SHA_BAD))
    state = harness.current("payments")

    blocked = gate(state, None, T0 + 2 * MIN, config)
    assert blocked["decision"] == "block"
    assert _codes(blocked) == ["kev_finding", "firing_incident", "failing_ci"]
    assert all(r["decision"] == "block" for r in blocked["reasons"])
    assert "CVE-2021-44228" in blocked["reasons"][0]["message"]
    assert "Terminal shell in container" in blocked["reasons"][1]["message"]
    assert 70 > blocked["score"] >= 40 and _adds_up(blocked)  # blocked by reasons, not score
    factors = {c["factor"] for c in blocked["contributions"]}
    assert factors == {"findings", "incidents", "ci"}

    # The CVE is fixed (a newer scan resolves the finding), the alert resolves, CI passes.
    fixed_at = T0 + HOUR
    _feed(harness, outputs=[kev_finding("resolved", fixed_at), falco_alert("resolved", fixed_at)])
    _feed(harness, ci_event("success", fixed_at + MIN, 2, SHA_FIX))
    outputs = harness.feed([tick_signal("p0", fixed_at + 2 * MIN)])
    state = harness.current("payments")
    right_after = gate(state, None, fixed_at + 2 * MIN, config)
    assert _codes(right_after) == ["risk_score"]  # only the recent incident's residue
    assert right_after["decision"] == "warn"

    scores = []
    for hours in (1, 3, 6, 9, 12, 18, 24, 36, 48):
        now = fixed_at + hours * HOUR
        answer = gate(state, None, now, config)
        assert _adds_up(answer)
        scores.append((answer["score"], answer["decision"]))
    assert [s for s, _ in scores] == sorted((s for s, _ in scores), reverse=True)
    assert scores[-1] == (scores[-1][0], "allow")
    assert {d for _, d in scores} == {"allow"}  # the residue fell below warn_score
    final = gate(state, None, fixed_at + 48 * HOUR, config)
    assert final["decision"] == "allow" and final["reasons"] == []
    # The stage emitted the decay on `risk` as event time advanced.
    outputs += harness.feed([tick_signal("p0", fixed_at + 48 * HOUR)])
    risk = [v for v in values(outputs, "risk") if v["entity"] == "payments"]
    assert risk[-1]["score"] == final["score"] or abs(risk[-1]["score"] - final["score"]) <= 5


def test_scorecard_on_each_deployment_with_change_size():
    config = RiskConfig()
    harness = Harness(config)
    _feed(harness, push_event(T0, SHA_BAD, files=80))
    _feed(harness, ci_event("success", T0 + MIN, 1, SHA_BAD))
    _feed(harness, outputs=[kev_finding("firing", T0 + 2 * MIN)])
    outputs = _feed(harness, deployment_event("in_progress", T0 + 10 * MIN, 7, SHA_BAD))
    outputs += _feed(harness, deployment_event("success", T0 + 12 * MIN, 7, SHA_BAD))
    outputs += harness.feed([tick_signal("p0", T0 + 20 * MIN)])
    cards = values(outputs, "scorecards")
    assert len(cards) == 1  # one per deployment, not per status
    card = cards[0]
    assert card["service"] == "payments"
    assert card["deployment"]["deployment_id"] == 7
    assert card["deployment"]["commit_sha"] == SHA_BAD
    assert card["decision"] == "block"
    assert _codes(card) == ["kev_finding", "large_change"]
    assert card["facts"]["change_size"]["files"] == 80
    assert card["time"] == "2024-03-01T12:10:00.000Z"
    assert _adds_up(card)
    assert any(c["factor"] == "change" for c in card["contributions"])
    assert [o.key for o in outputs if o.topic == "scorecards"] == ["payments"]
    again = scorecard(
        harness.current("payments"),
        harness.current("payments")["deploys"]["repo:acme/payments|deployment:7"]["sig"],
        config,
        now_ms=T0 + 10 * MIN,
    )
    assert again["id"] == card["id"]


def test_artifact_scope_and_critical_findings():
    config = RiskConfig()
    catalogue = Catalogue.from_dict(
        {"services": [{"name": "payments", "entities": ["image:registry.example.com/payments*"]}]}
    )
    harness = Harness(config, catalogue)
    worker = kev_finding("firing", T0, image="registry.example.com/payments-worker")
    _feed(harness, outputs=[worker], catalogue=catalogue)
    critical = alert_record(
        "finding",
        "firing",
        "image:registry.example.com/payments",
        "fp-crit",
        T0,
        "critical",
        {
            "alertname": "Vulnerability",
            "vulnerability_id": "CVE-2024-0001",
            "artifact": "registry.example.com/payments",
        },
        {"cvss": 9.1, "severity_label": "CRITICAL", "confidence": 0.95},
    )
    _feed(harness, outputs=[critical], catalogue=catalogue)
    state = harness.current("payments")
    service_wide = gate(state, None, T0 + MIN, config)
    assert _codes(service_wide)[:2] == ["kev_finding", "critical_finding"]
    scoped = gate(state, {"artifact": "registry.example.com/payments:1.4.3"}, T0 + MIN, config)
    assert "kev_finding" not in _codes(scoped)  # the KEV is in another image
    assert scoped["reasons"][0]["decision"] == "warn"
    strict = RiskConfig(block_critical_findings=True)
    assert (
        gate(state, {"artifact": "registry.example.com/payments"}, T0 + MIN, strict)["reasons"][0][
            "decision"
        ]
        == "block"
    )


def test_failing_checks_follow_the_commit_then_the_branch():
    config = RiskConfig()
    harness = Harness(config)
    _feed(harness, ci_event("failure", T0, 1, SHA_BAD, branch="feature"))
    _feed(harness, ci_event("success", T0 + MIN, 2, SHA_FIX))
    state = harness.current("payments")
    assert "failing_ci" not in _codes(gate(state, None, T0 + 2 * MIN, config))  # main is green
    on_branch = gate(state, {"branch": "feature"}, T0 + 2 * MIN, config)
    assert "failing_ci" in _codes(on_branch)
    assert "branch feature" in on_branch["reasons"][0]["message"]
    on_commit = gate(state, {"commit_sha": SHA_FIX, "branch": "feature"}, T0 + 2 * MIN, config)
    assert "failing_ci" not in _codes(on_commit)  # its own runs passed


def test_flaky_and_failure_rate_warn():
    config = RiskConfig(min_runs=4)
    harness = Harness(config)
    _feed(harness, ci_event("failure", T0, 1, SHA_BAD, kind="ci_job", job="unit-tests"))
    _feed(
        harness,
        ci_event("success", T0 + MIN, 1, SHA_BAD, attempt=2, kind="ci_job", job="unit-tests"),
    )
    for i in range(4):
        status = "failure" if i < 2 else "success"
        _feed(harness, ci_event(status, T0 + (2 + i) * MIN, 10 + i, f"{i:040x}"))
    answer = gate(harness.current("payments"), None, T0 + 10 * MIN, config)
    assert answer["decision"] == "warn"
    assert _codes(answer) == ["flaky_ci", "ci_failure_rate"]
    assert "unit-tests" in answer["reasons"][0]["message"]


def test_change_failure_rate_and_previous_deploy_failed():
    config = RiskConfig(min_deployments=4, cfr_warn=0.3)
    harness = Harness(config)
    for i in range(4):
        t = T0 + i * DAY
        _feed(harness, deployment_event("success", t, 200 + i, f"{i:040x}"))
        if i in (1, 3):
            _feed(harness, outputs=[falco_alert("firing", t + HOUR, severity="high")])
            _feed(harness, outputs=[falco_alert("resolved", t + 2 * HOUR, severity="high")])
    answer = gate(harness.current("payments"), None, T0 + 3 * DAY + 3 * HOUR, config)
    assert "change_failure_rate" in _codes(answer)
    assert "previous_deploy_failed" in _codes(answer)
    assert answer["facts"]["change_failure_rate"]["rate"] == 0.5
    assert answer["facts"]["since_last_deploy_ms"] == 3 * HOUR
    cooldown = RiskConfig(deploy_cooldown_ms=6 * HOUR)
    assert "deploy_cooldown" in _codes(
        gate(harness.current("payments"), None, T0 + 3 * DAY + 3 * HOUR, cooldown)
    )


def test_drift_and_anomaly_reasons():
    config = RiskConfig()
    harness = Harness(config)
    anomaly = {
        "id": "an-1",
        "series": "service:payments|r|http_5xx",
        "entity": "service:payments",
        "kind": "rate",
        "name": "http_5xx",
        "time": "2024-03-01T12:00:00.000Z",
        "score": 0.95,
    }
    drift = {
        "id": "d-1",
        "resource": "k8s:prod/deployments/payments",
        "status": "drifted",
        "time": "2024-03-01T12:00:00.000Z",
    }
    _feed(harness, outputs=[Output("anomalies", "a", anomaly), Output("drift", "d", drift)])
    answer = gate(harness.current("payments"), None, T0 + 10 * MIN, config)
    assert _codes(answer) == ["recent_anomaly", "open_drift"]
    assert answer["decision"] == "warn"
    later = gate(harness.current("payments"), None, T0 + 2 * HOUR, config)
    assert _codes(later) == ["open_drift"]  # the anomaly is no longer recent


def test_gate_unknown_service_and_proposed_change():
    config = RiskConfig()
    answer = gate(None, None, T0, config)
    assert (answer["decision"], answer["score"], answer["reasons"]) == ("allow", 0, [])
    big = gate(None, {"additions": 900, "deletions": 300}, T0, config)
    assert big["decision"] == "warn"
    assert _codes(big) == ["large_change"]
    assert big["score"] == round(50 * 1200 / 2200 * 0.5 / ZETA)  # weight 0.5, one item
    assert _adds_up(big)
    assert big["contributions"][0]["details"]["top"][0]["key"] == "~proposed_change"


@pytest.mark.parametrize("size", [0, 10, 400, 1000, 5000, 10**6])
def test_change_points_are_bounded(size):
    answer = gate(None, {"lines_changed": size}, T0, RiskConfig())
    assert 0 <= answer["score"] <= 25 and _adds_up(answer)
