"""Builders shared by the risk and scorecard tests: alert records, CI events, a stage harness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.catalogue import Catalogue
from app.model.events import Event, event_id, format_time, parse_time
from app.model.outputs import Output
from app.runtime.risk_clock import RiskClock
from app.runtime.staged import StagedState
from tables.alerts.scoring import Scorer
from tables.risk.model import RiskConfig
from tables.risk.stage import RiskStage

T0 = parse_time("2024-03-01T12:00:00Z")
S = 1000
MIN = 60 * S
HOUR = 60 * MIN
DAY = 24 * HOUR
CATALOGUE = Catalogue.load(Path(__file__).resolve().parents[3] / "docs/catalogue.example.yaml")
PAYMENTS_IMAGE = "registry.example.com/payments"


def alert_record(
    kind: str,
    status: str,
    entity: str,
    fingerprint: str,
    t: int,
    severity: str,
    labels: dict[str, str],
    scoring: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    alert_type: str = "x",
) -> Output:
    """A `vigil.alerts` record as tables/alerts/stage.py writes it, scored by the real Scorer."""
    state = {
        "kind": kind,
        "type": alert_type,
        "severity": severity,
        "entity": entity,
        "last_seen": t,
        "scoring": scoring or {},
    }
    score, factors = Scorer(catalogue=CATALOGUE).score(state, t)
    value = {
        "id": event_id("alert", entity, fingerprint, t, status),
        "fingerprint": fingerprint,
        "kind": kind,
        "status": status,
        "notification": "firing" if status == "firing" else "resolved",
        "entity": entity,
        "source": "test",
        "labels": {"alertname": "x", **labels},
        "annotations": annotations or {},
        "severity": severity,
        "score": score,
        "factors": factors,
        "time": format_time(t),
        "starts_at": format_time(t),
    }
    return Output("alerts", fingerprint, value)


def kev_finding(status: str, t: int, cve: str = "CVE-2021-44228", image: str = PAYMENTS_IMAGE):
    return alert_record(
        "finding",
        status,
        f"image:{image}",
        f"fp-{cve}-{image}",
        t,
        "critical",
        {"alertname": "Vulnerability", "vulnerability_id": cve, "artifact": image},
        {"kev": True, "epss": 0.97, "cvss": 10.0, "severity_label": "CRITICAL", "confidence": 0.95},
        alert_type="vulnerability",
    )


def falco_alert(status: str, t: int, severity: str = "critical", image: str = PAYMENTS_IMAGE):
    return alert_record(
        "runtime",
        status,
        "host:node-a",
        "fp-falco-shell",
        t,
        severity,
        {"alertname": "Terminal shell in container", "image": image, "namespace": "prod"},
        {"confidence": 0.9},
        alert_type="runtime_alert",
    )


def ci_event(
    status: str,
    t: int,
    run_id: int,
    sha: str,
    repo: str = "acme/payments",
    workflow: str = "CI",
    attempt: int = 1,
    kind: str = "ci_run",
    job: str | None = None,
    branch: str = "main",
) -> Event:
    attributes = {
        "provider": "github",
        "ci_status": status,
        "status": "completed",
        "conclusion": status,
        "workflow": workflow,
        "run_id": run_id,
        "run_attempt": attempt,
        "branch": branch,
        "commit_sha": sha,
    }
    if kind == "ci_job":
        attributes.update(job_name=job, job_id=run_id * 10 + attempt)
    return Event(
        id=event_id("test", kind, run_id, attempt, status, t),
        source="github",
        type=kind,
        ts_ms=t,
        entity=f"repo:{repo}",
        severity="medium" if status == "failure" else "info",
        attributes=attributes,
    )


def deployment_event(
    state: str, t: int, deployment_id: int, sha: str, repo: str = "acme/payments", **extra: Any
) -> Event:
    attributes = {
        "provider": "github",
        "ci_status": state,
        "deployment_state": state,
        "environment": "production",
        "deployment_id": deployment_id,
        "commit_sha": sha,
        "branch": "main",
        **extra,
    }
    return Event(
        id=event_id("test", "deployment", deployment_id, state, t),
        source="github",
        type="deployment",
        ts_ms=t,
        entity=f"repo:{repo}",
        severity="medium" if state == "failure" else "info",
        attributes=attributes,
    )


def push_event(t: int, sha: str, files: int, repo: str = "acme/payments") -> Event:
    return Event(
        id=event_id("test", "push", sha),
        source="github",
        type="push",
        ts_ms=t,
        entity=f"repo:{repo}",
        severity="info",
        attributes={
            "ref": "refs/heads/main",
            "branch": "main",
            "commit_sha": sha,
            "commit_count": 3,
            "files_added": files,
            "files_modified": 0,
            "files_removed": 0,
        },
    )


class Harness:
    """One partition of the risk stage over a dict table, committing after every signal."""

    def __init__(self, config: RiskConfig | None = None, catalogue=CATALOGUE) -> None:
        self.config = config or RiskConfig()
        self.stage = RiskStage(self.config, catalogue)
        self.clock = RiskClock(self.stage)
        self.table: dict[str, Any] = {}

    def feed(self, signals: list[dict[str, Any]]) -> list[Output]:
        outputs: list[Output] = []
        for signal in signals:
            staged = StagedState(self.table, owner=0)
            outputs += self.clock.on_signal(signal, 0, staged)
            staged.commit()
        return outputs

    def current(self, subject: str) -> dict[str, Any] | None:
        """The subject's state with the signals still held applied (what the gate reads)."""
        return self.stage.current(self.table.get(subject))

    def tick(self, now_ms: int) -> list[Output]:
        staged = StagedState(self.table, owner=0)
        outputs = self.clock.on_tick(now_ms, staged, 0)
        staged.commit()
        return outputs

    def flush(self) -> list[Output]:
        staged = StagedState(self.table, owner=0)
        outputs = self.clock.flush(staged, 0)
        staged.commit()
        return outputs


def values(outputs: list[Output], topic: str) -> list[dict[str, Any]]:
    return [out.value for out in outputs if out.topic == topic]
