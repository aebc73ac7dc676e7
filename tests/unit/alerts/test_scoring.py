"""Alert risk scoring (tables/alerts/scoring.py) and the service catalogue (app/catalogue.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from app.catalogue import Catalogue
from app.model.events import format_time, parse_time
from app.runtime.staged import StagedState
from app.settings import REPO_ROOT
from app.sources.normalize import Normalizer
from tables.alerts.config import DedupConfig
from tables.alerts.scoring import Scorer, grype_risk, grype_severity
from tables.alerts.stage import AlertStage
from tables.alerts.timers import TimerSchedule

EXAMPLE = Path(REPO_ROOT) / "docs" / "catalogue.example.yaml"
T0 = parse_time("2024-03-01T12:00:00Z")
DAY = 86_400_000


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load(EXAMPLE)


def alert(**overrides) -> dict:
    base = {
        "kind": "runtime",
        "type": "runtime_alert",
        "severity": "high",
        "entity": "host:elsewhere",
        "last_seen": T0,
        "scoring": {"confidence": 0.9},
    }
    return {**base, **overrides}


# ---- Grype's risk -----------------------------------------------------------------------


def test_grype_severity_is_the_mean_of_label_midpoint_and_cvss():
    assert grype_severity("HIGH", None) == pytest.approx(0.75)
    assert grype_severity("high", 8.0) == pytest.approx((0.75 + 0.8) / 2)
    assert grype_severity("critical", [9.0, 10.0]) == pytest.approx((0.9 + 0.95) / 2)
    assert grype_severity("negligible", None) == pytest.approx(0.05)
    assert grype_severity(None, None) == pytest.approx(0.5), "unknown counts as 5"


def test_grype_risk_formula():
    # threat = EPSS without KEV
    assert grype_risk(0.5, False, None, "high", 8.0) == pytest.approx(0.5 * 0.775 * 100)
    # threat = 1 in KEV, kev_factor 1.05; 1.1 with known ransomware use
    assert grype_risk(0.01, True, None, "high", 8.0) == pytest.approx(0.775 * 1.05 * 100)
    assert grype_risk(None, True, "Known", "high", 8.0) == pytest.approx(0.775 * 1.1 * 100)
    assert grype_risk(None, True, True, "high", 8.0) == pytest.approx(0.775 * 1.1 * 100)
    assert grype_risk(None, True, "Unknown", "high", 8.0) == pytest.approx(0.775 * 1.05 * 100)
    # capped at 100; no EPSS and no KEV is 0
    assert grype_risk(None, True, "Known", "critical", 10.0) == 100.0
    assert grype_risk(None, False, None, "critical", 9.8) == 0.0


# ---- the service catalogue --------------------------------------------------------------


def test_example_catalogue_maps_the_generator_entities(catalogue):
    payments = catalogue.service_for("image:registry.example.com/payments")
    assert payments["name"] == "payments"
    assert (payments["criticality"], payments["exposure"]) == ("critical", "internet")
    assert catalogue.service_for("repo:acme/search")["exposure"] == "internal"
    assert catalogue.service_for("service:checkout")["name"] == "checkout"
    assert catalogue.service_for("k8s:prod/pods/auth-7d9f-xk2p1")["name"] == "auth"
    for host in ("node-a", "node-b", "node-c", "node-d"):
        assert catalogue.service_for(f"host:{host}")["name"] == "cluster-nodes"
    assert catalogue.service_for("host:unknown") is None


def test_catalogue_validation():
    with pytest.raises(ValueError, match="criticality 'extreme'"):
        Catalogue.from_dict({"services": [{"name": "x", "criticality": "extreme"}]})
    with pytest.raises(ValueError, match="exposure"):
        Catalogue.from_dict({"services": [{"name": "x", "exposure": "dmz"}]})
    with pytest.raises(ValueError, match="'name'"):
        Catalogue.from_dict({"services": [{"criticality": "low"}]})
    assert Catalogue.from_dict(None).service_for("anything") is None


# ---- the alert score ------------------------------------------------------------------------


def test_score_factors_recompute_the_score(catalogue):
    score, factors = Scorer(catalogue).score(alert(entity="host:node-a"), T0)
    product = 1.0
    for name in ("severity", "exploitability", "asset_criticality", "exposure", "confidence"):
        product *= factors[name]
    product *= factors["recency"]
    assert score == pytest.approx(round(100 * min(1.0, product), 1))
    assert factors["service"] == "cluster-nodes"
    assert 0 <= score <= 100


def test_score_grows_with_criticality_exposure_and_exploitability(catalogue):
    scorer = Scorer(catalogue)
    vuln = {
        "kind": "finding",
        "type": "vulnerability",
        "severity": "high",
        "last_seen": T0,
        "scoring": {"severity_label": "HIGH", "cvss": 7.5, "confidence": 0.95},
    }
    search, _ = scorer.score({**vuln, "entity": "image:registry.example.com/search"}, T0)
    payments, _ = scorer.score({**vuln, "entity": "image:registry.example.com/payments"}, T0)
    assert payments > search, "critical + internet-facing beats medium + internal"
    entity = "image:registry.example.com/search"
    unknown, factors = scorer.score({**vuln, "entity": entity}, T0)
    assert "grype_risk" not in factors and factors["exploitability"] == 0.8
    low_epss, factors = scorer.score(
        {**vuln, "entity": entity, "scoring": {**vuln["scoring"], "epss": 0.01}}, T0
    )
    assert factors["grype_risk"] == pytest.approx(grype_risk(0.01, False, None, "HIGH", 7.5), 0.01)
    kev, factors = scorer.score(
        {**vuln, "entity": entity, "scoring": {**vuln["scoring"], "kev": True}}, T0
    )
    assert low_epss < unknown < kev
    assert factors["kev"] is True and factors["exploitability"] == 1.5


def test_recency_decays_in_event_time():
    scorer = Scorer()
    fresh, _ = scorer.score(alert(), T0)
    _, day_old = scorer.score(alert(), T0 + DAY)
    assert day_old["recency"] == pytest.approx(0.5)
    later, _ = scorer.score(alert(), T0 + DAY)
    assert later == pytest.approx(fresh / 2, abs=0.1)
    _, finding = scorer.score(alert(kind="finding", type="misconfiguration"), T0 + DAY)
    assert finding["recency"] > 0.97, "findings decay over weeks, not hours"


def test_alert_records_carry_the_score_and_factors(fixtures_dir, catalogue):
    raw = orjson.loads((fixtures_dir / "trivy/alpine-39.json").read_bytes())
    raw["ArtifactName"] = "registry.example.com/payments:1.4.2"
    raw["Metadata"]["RepoTags"] = ["registry.example.com/payments:1.4.2"]
    events = Normalizer().normalize(orjson.dumps(raw), family="scans")
    stage = AlertStage(DedupConfig(), Scorer(catalogue))
    alerts, groups, schedule = StagedState({}), StagedState({}), TimerSchedule()
    outputs = []
    for event in events:
        outputs += stage.on_event(event, event.ts_ms, alerts, groups, schedule)
    outputs += stage.on_watermark(events[0].ts_ms + 60_000, alerts, groups, schedule)
    records = [o.value for o in outputs if o.topic == "alerts"]
    assert len(records) == 6
    assert {r["entity"] for r in records} == {"image:registry.example.com/payments"}
    for record in records:
        assert record["factors"]["service"] == "payments"
        assert 0 < record["score"] <= 100
        assert record["time"] == format_time(events[0].ts_ms + 30_000)
    by_cve = {r["labels"]["vulnerability_id"]: r["score"] for r in records}
    assert by_cve["CVE-2019-14697"] > by_cve["CVE-2019-1549"], "critical above medium"
