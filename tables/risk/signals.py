"""Risk signals: what the process stage tells the risk stage, one small record per subject.

The process agent calls `signals_from(event, outputs, catalogue)` with the event it processed
and that event's outputs, and sends each signal (`signal_outputs`) to the internal
`risk_signals` topic keyed by `service`: the risk stage's table is keyed by service, so all
signals of a service meet in one partition whatever entity they came from.

A signal is
`{id, service, entity_type, entity, kind, key, status, points_input, severity, time_ms,
details, criticality, exposure}`:

- `service`: the risk subject, also the topic key. A service name (`payments`), or an
  aggregate: `repo:<owner/name>` (entity_type repository), `cluster:<name>` (cluster),
  `account:<aws account>` (account). Service names come from the catalogue, else from the
  entity (`derive_service`); aggregates from the entity's kind.
- `kind`: finding | incident | violation | drift | anomaly | ci | deployment | change.
- `key`: the stable id of the thing (alert fingerprint, anomaly series, drift resource,
  pipeline identity, deployment, commit).
- `status`: open | closed (findings, incidents, violations, drift, failing pipelines: they
  hold until closed) | transient (anomalies, deployments, changes: they happened once).
- `points_input`: the thing's own risk, 0..100, before decay, weights and catalogue
  multipliers (see `finding_points` and `alert_points`).
- `criticality`, `exposure`: the service's catalogue entry (None when not in it).
- `id`: deterministic (the same input always gives the same id).

Sources: `alerts` outputs of kind finding (→ finding), runtime and prom (→ incident),
violation (→ violation); kinds ci and anomaly are skipped, since CI events and `anomalies`
outputs carry them first-hand. `anomalies` outputs (→ anomaly), `drift` / `compliance`
outputs (→ drift), and from the event itself: `ci_run` / `ci_job` that succeeded or failed
(→ ci), `deployment` and deploy workflow runs (→ deployment), `push` and `merge_request`
(→ change).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from app.model.events import SEVERITY_RANK, Event, event_id, parse_time
from app.model.images import image_repository
from app.model.outputs import Output
from app.model.weights import SEVERITY_MIDPOINT

SIGNAL_TOPIC = "risk_signals"

#: Threat (exploitation likelihood) assumed for a finding without EPSS or KEV data.
THREAT_PRIOR: dict[str, float] = {
    "Vulnerability": 0.1,
    "DependabotAlert": 0.1,
    "Misconfiguration": 0.1,
    "ExposedSecret": 0.5,
    "SecretScanningAlert": 0.5,
    "SastFinding": 0.05,
    "CodeScanningAlert": 0.05,
}
DEFAULT_THREAT_PRIOR = 0.1
#: Share of a failing pipeline's severity that becomes points (medium 30, high 45).
CI_FAILURE_WEIGHT = 0.6
#: Confidence given to drift and compliance records.
DRIFT_CONFIDENCE = 0.8

#: Workflow names or paths that deploy.
DEPLOY_WORKFLOW = re.compile(r"(?i)deploy|release|rollout|\bcd\b")

DRIFT_TOPICS = ("drift", "compliance")
_OPEN_WORDS = frozenset(
    {"drifted", "open", "firing", "fail", "failed", "failing", "violation", "non_compliant"}
)
_CLOSED_WORDS = frozenset(
    {"resolved", "closed", "pass", "passed", "compliant", "fixed", "in_sync", "ok"}
)
#: Kubernetes resources that name a workload (their name is the service's).
_WORKLOADS = frozenset(
    {
        "pods",
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "jobs",
        "cronjobs",
        "services",
    }
)
#: Kubernetes' random name alphabet (k8s.io/apimachinery rand.String, pod-template-hash).
_K8S_RAND = "[bcdfghjklmnpqrstvwxz2456789]"
_POD_SUFFIXES = (
    re.compile(rf"^(.+)-{_K8S_RAND}{{5,10}}-{_K8S_RAND}{{5}}$"),  # Deployment pod
    re.compile(r"^(.+)-\d+$"),  # StatefulSet pod
    re.compile(rf"^(.+)-{_K8S_RAND}{{5}}$"),  # DaemonSet / Job pod
)
_MAX_TEXT = 200


class Catalogue(Protocol):
    """What signals need from a service catalogue (app.catalogue.Catalogue fits)."""

    def service_for(self, entity: str) -> dict[str, Any] | None: ...


# ---- services and subjects ----------------------------------------------------------------


def pod_workload(pod: str) -> str:
    """A pod name without the suffixes its controller added (`payments-7c5d9-x2kqz` ->
    `payments`, `db-0` -> `db`)."""
    for pattern in _POD_SUFFIXES:
        match = pattern.match(pod)
        if match:
            return match.group(1)
    return pod


def derive_service(entity: str) -> str | None:
    """The service an entity names when the catalogue does not list it, else None.

    `service:<name>` -> name; `image:<registry>/<path>` -> the repository's last segment;
    `repo:<owner>/<name>` -> name; `k8s:<ns>/<workload resource>/<name>` and `pod:<ns>/<pod>`
    -> the workload name (controller suffixes removed). Hosts, cloud accounts, Terraform
    addresses, cluster-scoped Kubernetes objects and others name no service: their signals go
    to the aggregates only.
    """
    kind, _, rest = entity.partition(":")
    if not rest:
        return None
    name: str | None = None
    if kind == "service":
        name = rest
    elif kind == "image":
        name = image_repository(rest).rstrip("/").rsplit("/", 1)[-1]
    elif kind == "repo":
        name = rest.rstrip("/").rsplit("/", 1)[-1]
    elif kind == "k8s":
        parts = rest.split("/")
        if len(parts) == 3 and parts[0] != "_cluster" and parts[1] in _WORKLOADS:
            name = pod_workload(parts[2]) if parts[1] == "pods" else parts[2]
            name = None if name == "*" else name
    elif kind == "pod":
        name = pod_workload(rest.rsplit("/", 1)[-1])
    return name or None


def resolve_service(
    entity: str, catalogue: Catalogue | None
) -> tuple[str, dict[str, Any] | None] | None:
    """(service name, catalogue entry or None) of an entity: the catalogue first, else
    `derive_service`; None when neither names one."""
    if catalogue is not None:
        entry = catalogue.service_for(entity)
        if entry and entry.get("name"):
            return str(entry["name"]), entry
    derived = derive_service(entity)
    return (derived, None) if derived else None


def aggregates(entity: str, cluster: str) -> list[tuple[str, str]]:
    """(subject, entity_type) aggregates an entity belongs to."""
    kind, _, rest = entity.partition(":")
    if kind == "repo" and rest:
        return [(f"repo:{rest}", "repository")]
    if kind in ("host", "k8s", "pod"):
        return [(f"cluster:{cluster}", "cluster")]
    if kind == "aws" and rest:
        return [(f"account:{rest.split('/', 1)[0]}", "account")]
    return []


def subjects(
    entity: str,
    workload_hints: Iterable[str],
    catalogue: Catalogue | None,
    cluster: str,
) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every (subject, entity_type, catalogue entry) a signal about `entity` goes to.

    The workload's service first (the first hint that resolves: e.g. a Falco alert's
    `image:<repository>`), then the entity's own service when different (the node's), then the
    entity's aggregates.
    """
    found: list[tuple[str, str, dict[str, Any] | None]] = []
    names: set[str] = set()
    for hint in workload_hints:
        resolved = resolve_service(hint, catalogue)
        if resolved:
            found.append((resolved[0], "service", resolved[1]))
            names.add(resolved[0])
            break
    own = resolve_service(entity, catalogue)
    if own and own[0] not in names:
        found.append((own[0], "service", own[1]))
    found.extend((subject, kind, None) for subject, kind in aggregates(entity, cluster))
    return found


# ---- points -------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value else None


def severity_term(severity: str | None, factors: Mapping[str, Any] | None = None) -> float:
    """Grype's severity term (0.05..0.95): the alert's own `severity` factor when scored
    (it includes CVSS), else the label's midpoint / 10."""
    scored = _number((factors or {}).get("severity"))
    if scored is not None:
        return max(0.0, min(1.0, scored))
    return SEVERITY_MIDPOINT.get((severity or "unknown").lower(), 5.0) / 10


def finding_points(
    factors: Mapping[str, Any], alertname: str | None, severity: str | None
) -> float:
    """A finding's risk, 0..100: Grype's `min(threat × severity × kev_factor, 1) × 100`
    (threat 1 in KEV, else EPSS) whenever EPSS or KEV is known (the alert's `grype_risk`),
    else the same with the type's threat prior (`THREAT_PRIOR`)."""
    grype = _number(factors.get("grype_risk"))
    if grype is not None:
        return max(0.0, min(100.0, grype))
    prior = THREAT_PRIOR.get(alertname or "", DEFAULT_THREAT_PRIOR)
    return 100.0 * min(1.0, prior * severity_term(severity, factors))


def alert_points(factors: Mapping[str, Any], severity: str | None) -> float:
    """An incident's or violation's risk, 0..100: 100 × severity term × confidence."""
    confidence = _number(factors.get("confidence"))
    confidence = 0.8 if confidence is None else max(0.0, min(1.0, confidence))
    return 100.0 * severity_term(severity, factors) * confidence


# ---- builders -----------------------------------------------------------------------------


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return value[: _MAX_TEXT - 1] + "…"
    return value


def _details(**values: Any) -> dict[str, Any]:
    return {k: _short(v) for k, v in values.items() if v is not None and v != "" and v != []}


def _time(value: Any, fallback: int | None = None) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return parse_time(value)
    except (TypeError, ValueError):
        return fallback


def _fan_out(
    base: dict[str, Any],
    entity: str,
    hints: Iterable[str],
    catalogue: Catalogue | None,
    cluster: str,
    origin: str,
) -> list[dict[str, Any]]:
    out = []
    identity = (base["kind"], base["key"], base["status"], base["time_ms"], origin)
    for subject, entity_type, entry in subjects(entity, hints, catalogue, cluster):
        signal = {
            "id": event_id("risk_signal", subject, *identity),
            "service": subject,
            "entity_type": entity_type,
            "entity": entity,
            **base,
            "criticality": entry.get("criticality") if entry else None,
            "exposure": entry.get("exposure") if entry else None,
        }
        out.append(signal)
    return out


def _from_alert(record: Mapping[str, Any], catalogue: Catalogue | None, cluster: str) -> list:
    kind = record.get("kind")
    kinds = {"finding": "finding", "runtime": "incident", "prom": "incident"}
    kinds["violation"] = "violation"
    signal_kind = kinds.get(kind)  # ci and anomaly alerts: first-hand signals exist
    if record.get("notification") == "repeat":
        return []  # a reminder: the alert's state did not change, so neither does the risk
    entity = record.get("entity")
    time_ms = _time(record.get("time"))
    if signal_kind is None or not isinstance(entity, str) or time_ms is None:
        return []
    factors = record.get("factors") or {}
    labels = record.get("labels") or {}
    annotations = record.get("annotations") or {}
    severity = record.get("severity") if record.get("severity") in SEVERITY_RANK else "medium"
    alertname = labels.get("alertname")
    if signal_kind == "finding":
        points = finding_points(factors, alertname, severity)
        details = _details(
            alertname=alertname,
            vulnerability_id=labels.get("vulnerability_id"),
            rule_id=labels.get("rule_id") or labels.get("check_id"),
            artifact=labels.get("artifact"),
            package=labels.get("package"),
            target=labels.get("target"),
            fixed_version=annotations.get("fixed_version"),
            kev=factors.get("kev"),
            epss=factors.get("epss"),
            grype_risk=factors.get("grype_risk"),
        )
    else:
        points = alert_points(factors, severity)
        details = _details(
            alertname=alertname,
            alert_kind=kind,
            source=record.get("source"),
            image=labels.get("image"),
            namespace=labels.get("namespace"),
            reason=labels.get("reason"),
            starts_ms=_time(record.get("starts_at")),
            summary=annotations.get("summary"),
        )
    base = {
        "kind": signal_kind,
        "key": str(record.get("fingerprint") or record.get("id")),
        "status": "open" if record.get("status") == "firing" else "closed",
        "points_input": round(points, 4),
        "severity": severity,
        "time_ms": time_ms,
        "details": details,
    }
    hints = []
    if labels.get("image"):
        hints.append(f"image:{labels['image']}")
    namespace, pod = labels.get("namespace"), annotations.get("pod") or labels.get("pod")
    if namespace and pod:
        hints.append(f"k8s:{namespace}/pods/{pod}")
    for name in ("service", "app"):
        if labels.get(name):
            hints.append(f"service:{labels[name]}")
            break
    local_cluster = str(labels.get("cluster") or cluster)
    origin = str(record.get("id") or "")
    return _fan_out(base, entity, hints, catalogue, local_cluster, origin)


def _from_anomaly(record: Mapping[str, Any], catalogue: Catalogue | None, cluster: str) -> list:
    entity = record.get("entity")
    time_ms = _time(record.get("time"))
    score = _number(record.get("score"))
    if not isinstance(entity, str) or time_ms is None or score is None:
        return []
    score = max(0.0, min(1.0, score))
    severity = "high" if score >= 0.99 else "medium"
    base = {
        "kind": "anomaly",
        "key": str(record.get("series") or record.get("id")),
        "status": "transient",
        "points_input": round(100.0 * severity_term(severity) * score, 4),
        "severity": severity,
        "time_ms": time_ms,
        "details": _details(
            name=record.get("name"),
            series=record.get("series"),
            value=record.get("value"),
            expected=record.get("expected"),
            score=score,
        ),
    }
    return _fan_out(base, entity, (), catalogue, cluster, str(record.get("id") or ""))


def _from_drift(record: Mapping[str, Any], catalogue: Catalogue | None, cluster: str) -> list:
    status_word = str(record.get("status") or "").lower()
    if status_word in _OPEN_WORDS:
        status = "open"
    elif status_word in _CLOSED_WORDS:
        status = "closed"
    else:
        return []
    resource = record.get("resource") or record.get("key")
    entity = record.get("entity")
    if not isinstance(entity, str):
        if not isinstance(resource, str) or not resource:
            return []
        entity = resource if ":" in resource else f"tf:{resource}"
    time_ms = _time(record.get("time"))
    if time_ms is None:
        return []
    severity = record.get("severity") if record.get("severity") in SEVERITY_RANK else "medium"
    base = {
        "kind": "drift",
        "key": str(record.get("key") or resource or entity),
        "status": status,
        "points_input": round(100.0 * severity_term(severity) * DRIFT_CONFIDENCE, 4),
        "severity": severity,
        "time_ms": time_ms,
        "details": _details(
            resource=resource,
            control=record.get("control") or record.get("rule_id"),
            paths=(record.get("paths") or [])[:10] or None,
            actor=record.get("actor"),
        ),
    }
    hints = [f"service:{record['service']}"] if record.get("service") else []
    return _fan_out(base, entity, hints, catalogue, cluster, str(record.get("id") or ""))


def _ci_details(a: Mapping[str, Any]) -> dict[str, Any]:
    return _details(
        provider=a.get("provider"),
        workflow=a.get("workflow"),
        job_name=a.get("job_name"),
        branch=a.get("branch") or a.get("tag"),
        commit_sha=a.get("commit_sha"),
        run_id=a.get("run_id"),
        run_attempt=a.get("run_attempt"),
        job_id=a.get("job_id"),
        conclusion=a.get("conclusion"),
        failed_steps=a.get("failed_steps") or a.get("failed_jobs"),
        url=a.get("url"),
    )


def _from_ci(event: Event, deploy_workflow: re.Pattern[str], cluster: str, catalogue) -> list:
    a = event.attributes
    ci_status = a.get("ci_status")
    signals: list[dict[str, Any]] = []
    is_run = event.type == "ci_run"
    name = "|".join(str(a.get(k) or "") for k in ("workflow", "job_name"))
    if ci_status in ("success", "failure") and not (
        ci_status == "failure" and a.get("allow_failure")
    ):
        branch = a.get("branch") or a.get("tag") or ""
        unit = a.get("run_id") if is_run else a.get("job_id")
        attempt = a.get("run_attempt") or 1
        details = _ci_details(a)
        details["run_key"] = f"{event.entity}|{'run' if is_run else 'job'}|{unit}|{attempt}"
        details["name"] = f"{event.entity}|{name}"
        base = {
            "kind": "ci",
            "key": f"{event.entity}|{event.type}|{name}|{branch}",
            "status": "open" if ci_status == "failure" else "closed",
            "points_input": round(100.0 * severity_term(event.severity) * CI_FAILURE_WEIGHT, 4)
            if ci_status == "failure"
            else 0.0,
            "severity": event.severity,
            "time_ms": event.ts_ms,
            "details": details,
        }
        signals += _fan_out(base, event.entity, (), catalogue, cluster, event.id)
    workflow_text = f"{a.get('workflow') or ''} {a.get('workflow_path') or ''}"
    if is_run and a.get("run_id") is not None and deploy_workflow.search(workflow_text):
        signals += _deployment(event, f"{event.entity}|run:{a['run_id']}", catalogue, cluster)
    return signals


def _deployment(event: Event, key: str, catalogue, cluster: str) -> list:
    a = event.attributes
    tier = a.get("environment_tier")
    production = a.get("production_environment")
    if production is None and isinstance(tier, str):
        production = tier == "production"
    base = {
        "kind": "deployment",
        "key": key,
        "status": "transient",
        "points_input": 0.0,
        "severity": event.severity,
        "time_ms": event.ts_ms,
        "details": _details(
            state=a.get("ci_status"),
            deployment_state=a.get("deployment_state") or a.get("status"),
            environment=a.get("environment"),
            production=production,
            commit_sha=a.get("commit_sha"),
            branch=a.get("branch"),
            deployment_id=a.get("deployment_id"),
            run_id=a.get("run_id"),
            workflow=a.get("workflow"),
            artifact=a.get("artifact") or a.get("image"),
            deployed_by=a.get("deployed_by") or a.get("triggered_by") or a.get("actor"),
            url=a.get("url"),
        ),
    }
    return _fan_out(base, event.entity, (), catalogue, cluster, event.id)


def _from_deployment(event: Event, catalogue, cluster: str) -> list:
    a = event.attributes
    if a.get("run_id") is not None:
        key = f"{event.entity}|run:{a['run_id']}"
    elif a.get("deployment_id") is not None:
        key = f"{event.entity}|deployment:{a['deployment_id']}"
    else:
        key = f"{event.entity}|event:{event.id}"
    return _deployment(event, key, catalogue, cluster)


def _from_change(event: Event, catalogue, cluster: str) -> list:
    a = event.attributes
    sha = a.get("commit_sha")
    if not sha or a.get("deleted"):
        return []
    details = _details(
        commit_sha=sha,
        merge_commit_sha=a.get("merge_commit_sha"),
        branch=a.get("branch"),
        target_branch=a.get("target_branch"),
        commit_count=a.get("commit_count"),
        files_added=a.get("files_added"),
        files_modified=a.get("files_modified"),
        files_removed=a.get("files_removed"),
        changes_count=a.get("changes_count"),
        additions=a.get("additions"),
        deletions=a.get("deletions"),
        forced=a.get("forced"),
    )
    base = {
        "kind": "change",
        "key": f"{event.entity}|{sha}",
        "status": "transient",
        "points_input": 0.0,
        "severity": "info",
        "time_ms": event.ts_ms,
        "details": details,
    }
    return _fan_out(base, event.entity, (), catalogue, cluster, event.id)


def signals_from(
    event: Event | None,
    outputs: Iterable[Output],
    catalogue: Catalogue | None = None,
    *,
    cluster: str = "default",
    deploy_workflow: re.Pattern[str] = DEPLOY_WORKFLOW,
) -> list[dict[str, Any]]:
    """The risk signals of one processed event and its outputs (see the module docstring).

    `cluster` names the cluster aggregate of host and Kubernetes entities (an alert's
    `cluster` label wins); `deploy_workflow` matches workflow names or paths that deploy.
    """
    signals: list[dict[str, Any]] = []
    if event is not None:
        kind = event.type
        if kind in ("ci_run", "ci_job"):
            signals += _from_ci(event, deploy_workflow, cluster, catalogue)
        elif kind == "deployment":
            signals += _from_deployment(event, catalogue, cluster)
        elif kind in ("push", "merge_request"):
            signals += _from_change(event, catalogue, cluster)
    for output in outputs:
        value = output.value
        if not isinstance(value, dict):
            continue
        if output.topic == "alerts":
            signals += _from_alert(value, catalogue, cluster)
        elif output.topic == "anomalies":
            signals += _from_anomaly(value, catalogue, cluster)
        elif output.topic in DRIFT_TOPICS:
            signals += _from_drift(value, catalogue, cluster)
    return signals


def signal_outputs(signals: Iterable[dict[str, Any]]) -> list[Output]:
    """Outputs for the internal `risk_signals` topic, keyed by subject."""
    return [Output(SIGNAL_TOPIC, signal["service"], signal) for signal in signals]
