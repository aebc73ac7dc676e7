"""Canonical events -> alert instances: stable labels, fingerprint, status and scoring inputs.

An alert's identity is its label set, as in Prometheus Alertmanager (REFERENCE.md): labels hold
only what names the problem (rule, entity, source, vulnerability id, package, target, ...),
never what drifts between two sightings of it (line numbers, severity, CVSS, fixed version,
timestamps, container ids, uuids, free text). Drifting details go into annotations, which are
shown but never compared.

Fingerprint:
- `prom_alert`: Alertmanager's FNV-1a 64-bit over the sender's labels
  (`app.sources.alertmanager.alertmanager_fingerprint`), so it equals Alertmanager's own.
- findings (`vulnerability`, `misconfiguration`, `secret`, `sast_finding`, GitHub security
  alerts): the adapter's `finding_key` (tool + artifact + target + package + id, or the
  provider's alert number), which already leaves severity, CVSS and line numbers out.
- everything else: the same FNV-1a over the stable label set built here.

Kinds: `runtime` (Falco), `prom` (Alertmanager webhooks), `finding` (scanners and GitHub
security alerts), `anomaly` (`vigil.anomalies`), `ci` (failed workflow runs, jobs and
deployments; the next success of the same one resolves it) and `violation` (risky CloudTrail
calls and Kubernetes audit events, medium severity and above).

Status: `resolved` for an Alertmanager alert whose status is resolved, a GitHub alert whose
state is fixed / dismissed / resolved (or an accepted SARIF suppression), and a CI run, job or
deployment that succeeded; `firing` otherwise. A firing `prom_alert` may carry `endsAt`
(`ends_ms`), after which it counts as resolved.

Findings carry a `scope`: the scan that re-checks them. A newer `scan_completed` of the same
scope that no longer lists a finding's key resolves it (`resolutions_from_scan`). Trivy scopes
are `trivy|<artifact>|<target>` with the OS-package target of an image written `os-pkgs` (its
name embeds the tag, which changes with every release); SARIF scopes are
`sarif|<tool>|<automation category>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from app.events import Event, parse_time
from app.model.fingerprints import alertmanager_fingerprint
from app.model.images import image_repository

KINDS: tuple[str, ...] = ("runtime", "finding", "prom", "anomaly", "ci", "violation")
STATUSES: tuple[str, ...] = ("firing", "resolved")

#: Longest annotation value kept (Alertmanager's webhook adapter cuts at the same length).
MAX_ANNOTATION_CHARS = 1024

#: How much each source's alerts are trusted to be real problems (0..1), by kind or type.
CONFIDENCE: dict[str, float] = {
    "runtime": 0.9,
    "prom": 0.9,
    "ci": 0.95,
    "violation": 0.8,
    "vulnerability": 0.95,
    "misconfiguration": 0.85,
    "secret": 0.8,
    "sast_finding": 0.6,
    "code_scanning_alert": 0.7,
    "dependabot_alert": 0.95,
    "secret_scanning_alert": 0.9,
}

#: GitHub alert states (and SARIF-like outcomes) that close an alert.
RESOLVED_STATES = frozenset({"fixed", "dismissed", "resolved", "auto_dismissed", "closed"})
#: Kubernetes audit stages that repeat an earlier stage of the same request.
SKIPPED_AUDIT_STAGES = frozenset({"RequestReceived", "ResponseStarted"})


@dataclass(slots=True)
class AlertInput:
    """One sighting of an alert instance, ready for the dedup stage.

    `ts_ms` is when it was seen (event time), `starts_ms` when the alert says it started (the
    sender's `startsAt`, else `ts_ms`), `ends_ms` the sender's `endsAt` (None: not given).
    `scoring` holds the risk inputs: `epss`, `kev`, `kev_ransomware`, `cvss`, `severity_label`,
    `confidence` (absent keys mean unknown).
    """

    id: str
    fingerprint: str
    entity: str
    kind: str
    source: str
    type: str
    labels: dict[str, str]
    annotations: dict[str, str]
    status: str
    ts_ms: int
    starts_ms: int
    ends_ms: int | None
    severity: str
    scoring: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None

    def match_labels(self) -> dict[str, str]:
        """What silences and inhibition rules match: the labels plus `entity` and `source`."""
        return {"entity": self.entity, "source": self.source, **self.labels}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (kept in state while the input waits for the watermark)."""
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "entity": self.entity,
            "kind": self.kind,
            "source": self.source,
            "type": self.type,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "status": self.status,
            "ts_ms": self.ts_ms,
            "starts_ms": self.starts_ms,
            "ends_ms": self.ends_ms,
            "severity": self.severity,
            "scoring": dict(self.scoring),
            "scope": self.scope,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertInput:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ScanResolution:
    """What a `scan_completed` proves: the scopes it re-checked and the keys still present."""

    scopes: frozenset[str]
    present: frozenset[str]
    ts_ms: int
    id: str


def match_labels(labels: dict[str, str], entity: str, source: str) -> dict[str, str]:
    """The label set silences and inhibition see for stored alert labels."""
    return {"entity": entity, "source": source, **labels}


# ---- helpers ------------------------------------------------------------------------------


def _labels(**values: Any) -> dict[str, str]:
    """A label set from keyword values: None and empty values are left out."""
    return {k: str(v) for k, v in values.items() if v is not None and v != ""}


def _annotations(**values: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None or value == "" or value == []:
            continue
        if not isinstance(value, str):
            value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        out[key] = value[:MAX_ANNOTATION_CHARS]
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None


def _scoring(kind_or_type: str, **values: Any) -> dict[str, Any]:
    out = {k: v for k, v in values.items() if v is not None}
    out.setdefault("confidence", CONFIDENCE.get(kind_or_type, 0.8))
    return out


def _alert(
    event: Event,
    kind: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    *,
    fingerprint: str | None = None,
    status: str = "firing",
    starts_ms: int | None = None,
    ends_ms: int | None = None,
    scoring: dict[str, Any] | None = None,
    scope: str | None = None,
) -> AlertInput:
    return AlertInput(
        id=event.id,
        fingerprint=fingerprint or alertmanager_fingerprint(labels),
        entity=event.entity,
        kind=kind,
        source=event.source,
        type=event.type,
        labels=labels,
        annotations=annotations,
        status=status,
        ts_ms=event.ts_ms,
        starts_ms=event.ts_ms if starts_ms is None else starts_ms,
        ends_ms=ends_ms,
        severity=event.severity,
        scoring=scoring or {},
        scope=scope,
    )


def trivy_target(artifact: str, target: str, artifact_name: str | None = None) -> str:
    """A Trivy result target as scoped here: an image's OS-package target becomes `os-pkgs`."""
    head, sep, _ = target.partition(" (")
    if sep and target.endswith(")"):
        if artifact_name is not None and head == artifact_name:
            return "os-pkgs"
        if image_repository(head) == artifact:
            return "os-pkgs"
    return target


def _trivy_scope(event: Event) -> tuple[str, str]:
    attrs = event.attributes
    artifact = str(attrs.get("artifact") or event.entity)
    target = str(attrs.get("target") or "")
    scoped = "os-pkgs" if attrs.get("class") == "os-pkgs" else trivy_target(artifact, target)
    return scoped, f"trivy|{artifact}|{scoped}"


def _sarif_scope(tool: str | None, category: str | None) -> str:
    return f"sarif|{(tool or '').lower()}|{category or ''}"


# ---- per event type ----------------------------------------------------------------------


def _runtime(event: Event) -> AlertInput:
    a = event.attributes
    fields = a.get("output_fields") or {}
    labels = _labels(
        alertname=a.get("rule"),
        entity=event.entity,
        source=event.source,
        falco_source=a.get("falco_source"),
        namespace=a.get("namespace"),
        image=a.get("image"),
    )
    annotations = _annotations(
        summary=a.get("output"),
        priority=a.get("priority"),
        tags=",".join(t for t in a.get("tags") or [] if isinstance(t, str)),
        container_id=a.get("container_id"),
        container_name=a.get("container_name"),
        image_tag=a.get("image_tag"),
        pod=a.get("pod"),
        user=a.get("user"),
        command=fields.get("proc.cmdline"),
        file=fields.get("fd.name"),
    )
    return _alert(event, "runtime", labels, annotations, scoring=_scoring("runtime"))


def _prom(event: Event) -> AlertInput:
    a = event.attributes
    labels = {k: v for k, v in (a.get("labels") or {}).items() if isinstance(v, str)}
    status = a.get("status") if a.get("status") in STATUSES else "firing"
    starts_ms = _time_or_none(a.get("starts_at"))
    sent = {k: v for k, v in (a.get("annotations") or {}).items() if isinstance(k, str)}
    annotations = _annotations(**{"generator_url": a.get("generator_url"), **sent})
    return _alert(
        event,
        "prom",
        labels,
        annotations,
        fingerprint=alertmanager_fingerprint(labels),
        status=status,
        starts_ms=starts_ms if starts_ms is not None else event.ts_ms,
        ends_ms=a.get("ends_at_ms") if isinstance(a.get("ends_at_ms"), int) else None,
        scoring=_scoring("prom", severity_label=a.get("severity_label")),
    )


def _time_or_none(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _vulnerability(event: Event) -> AlertInput | None:
    a = event.attributes
    key = a.get("finding_key")
    if not key:
        return None
    target, scope = _trivy_scope(event)
    purl = a.get("purl")
    package = (
        purl.split("#", 1)[0].split("?", 1)[0]
        if isinstance(purl, str) and purl
        else a.get("pkg_id") or a.get("pkg_name")
    )
    labels = _labels(
        alertname="Vulnerability",
        entity=event.entity,
        source=event.source,
        artifact=a.get("artifact"),
        target=target,
        package=package,
        pkg_path=a.get("pkg_path"),
        vulnerability_id=a.get("vulnerability_id"),
    )
    annotations = _annotations(
        title=a.get("title"),
        installed_version=a.get("installed_version"),
        fixed_version=a.get("fixed_version"),
        severity_label=a.get("severity_label"),
        cvss_vector=a.get("cvss_vector"),
        primary_url=a.get("primary_url"),
        target=a.get("target"),
        finding_key=key,
    )
    scoring = _scoring(
        "vulnerability",
        epss=_number(a.get("epss")),
        kev=a.get("kev") if isinstance(a.get("kev"), bool) else None,
        kev_ransomware=a.get("kev_ransomware"),
        cvss=_number(a.get("cvss")),
        severity_label=a.get("severity_label"),
    )
    return _alert(
        event, "finding", labels, annotations, fingerprint=key, scoring=scoring, scope=scope
    )


def _misconfiguration(event: Event) -> AlertInput | None:
    a = event.attributes
    key = a.get("finding_key")
    if not key:
        return None
    target, scope = _trivy_scope(event)
    labels = _labels(
        alertname="Misconfiguration",
        entity=event.entity,
        source=event.source,
        artifact=a.get("artifact"),
        target=target,
        check_id=a.get("avd_id") or a.get("check_id"),
        resource=a.get("resource"),
    )
    annotations = _annotations(
        title=a.get("title"),
        message=a.get("message"),
        resolution=a.get("resolution"),
        severity_label=a.get("severity_label"),
        primary_url=a.get("primary_url"),
        start_line=a.get("start_line"),
        finding_key=key,
    )
    scoring = _scoring("misconfiguration", severity_label=a.get("severity_label"))
    return _alert(
        event, "finding", labels, annotations, fingerprint=key, scoring=scoring, scope=scope
    )


def _secret(event: Event) -> AlertInput | None:
    a = event.attributes
    key = a.get("finding_key")
    if not key:
        return None
    target, scope = _trivy_scope(event)
    labels = _labels(
        alertname="ExposedSecret",
        entity=event.entity,
        source=event.source,
        artifact=a.get("artifact"),
        target=target,
        rule_id=a.get("rule_id"),
    )
    annotations = _annotations(
        title=a.get("title"),
        category=a.get("category"),
        severity_label=a.get("severity_label"),
        start_line=a.get("start_line"),
        finding_key=key,
    )
    scoring = _scoring("secret", severity_label=a.get("severity_label"))
    return _alert(
        event, "finding", labels, annotations, fingerprint=key, scoring=scoring, scope=scope
    )


def _sast(event: Event) -> AlertInput | None:
    a = event.attributes
    key = a.get("finding_key")
    if not key:
        return None
    labels = _labels(
        alertname="SastFinding",
        entity=event.entity,
        source=event.source,
        tool=(a.get("tool") or "").lower(),
        rule_id=a.get("rule_id"),
        path=a.get("path"),
    )
    annotations = _annotations(
        message=a.get("message"),
        rule_name=a.get("rule_name"),
        rule_description=a.get("rule_description"),
        help_uri=a.get("help_uri"),
        level=a.get("level"),
        start_line=a.get("start_line"),
        cwe=a.get("cwe"),
        finding_key=key,
    )
    status = "resolved" if a.get("suppressed") else "firing"
    scoring = _scoring(
        "sast_finding", cvss=_number(a.get("security_severity")), severity_label=a.get("level")
    )
    return _alert(
        event,
        "finding",
        labels,
        annotations,
        fingerprint=key,
        status=status,
        scoring=scoring,
        scope=_sarif_scope(a.get("tool"), a.get("category")),
    )


_GITHUB_ALERTNAMES = {
    "code_scanning_alert": "CodeScanningAlert",
    "dependabot_alert": "DependabotAlert",
    "secret_scanning_alert": "SecretScanningAlert",
}


def _github_alert(event: Event) -> AlertInput | None:
    a = event.attributes
    key = a.get("finding_key")
    if not key:
        return None
    state = a.get("state")
    closed = (
        state in RESOLVED_STATES
        if state
        else a.get("action") in ("fixed", "closed_by_user", "resolved", "auto_dismissed")
    )
    labels = _labels(
        alertname=_GITHUB_ALERTNAMES[event.type],
        entity=event.entity,
        source=event.source,
        alert_number=a.get("alert_number"),
        tool=a.get("tool"),
        rule_id=a.get("rule_id"),
        package=a.get("package"),
        manifest_path=a.get("manifest_path"),
    )
    annotations = _annotations(
        summary=a.get("summary") or a.get("rule_description") or a.get("secret_type_display_name"),
        state=state,
        cve_id=a.get("cve_id"),
        fixed_version=a.get("fixed_version"),
        path=a.get("path"),
        start_line=a.get("start_line"),
        dismissed_reason=a.get("dismissed_reason"),
        resolution=a.get("resolution"),
        url=a.get("url"),
        finding_key=key,
    )
    epss = a.get("epss")
    scoring = _scoring(
        event.type,
        epss=_number(epss.get("percentage")) if isinstance(epss, dict) else None,
        cvss=_number(a.get("cvss_score")),
        severity_label=a.get("severity_label"),
    )
    return _alert(
        event,
        "finding",
        labels,
        annotations,
        fingerprint=key,
        status="resolved" if closed else "firing",
        scoring=scoring,
    )


_CI_ALERTNAMES = {
    "ci_run": "WorkflowFailed",
    "ci_job": "JobFailed",
    "deployment": "DeploymentFailed",
}


def _ci(event: Event) -> AlertInput | None:
    a = event.attributes
    ci_status = a.get("ci_status")
    if ci_status not in ("failure", "success"):
        return None
    labels = _labels(
        alertname=_CI_ALERTNAMES[event.type],
        entity=event.entity,
        source=event.source,
        workflow=a.get("workflow"),
        job_name=a.get("job_name") if event.type == "ci_job" else None,
        environment=a.get("environment") if event.type == "deployment" else None,
        branch=a.get("branch"),
    )
    annotations = _annotations(
        conclusion=a.get("conclusion"),
        run_id=a.get("run_id"),
        commit_sha=a.get("commit_sha"),
        failed_steps=a.get("failed_steps"),
        url=a.get("url"),
    )
    status = "firing" if ci_status == "failure" else "resolved"
    return _alert(event, "ci", labels, annotations, status=status, scoring=_scoring("ci"))


_HANDLERS = {
    "runtime_alert": _runtime,
    "prom_alert": _prom,
    "vulnerability": _vulnerability,
    "misconfiguration": _misconfiguration,
    "secret": _secret,
    "sast_finding": _sast,
    "code_scanning_alert": _github_alert,
    "dependabot_alert": _github_alert,
    "secret_scanning_alert": _github_alert,
    "ci_run": _ci,
    "ci_job": _ci,
    "deployment": _ci,
}


def alert_from_event(event: Event) -> AlertInput | None:
    """The alert instance an event reports, or None when the event is not alert-like."""
    handler = _HANDLERS.get(event.type)
    return handler(event) if handler is not None else None


def resolutions_from_scan(event: Event) -> ScanResolution | None:
    """For a `scan_completed`: the scopes it re-checked and the finding keys still present.

    A finding of one of `scopes` whose key is not in `present` has been fixed (or is no longer
    reported), provided the scan is not older than the finding's last sighting.
    """
    if event.type != "scan_completed":
        return None
    a = event.attributes
    present = frozenset(k for k in a.get("finding_keys") or [] if isinstance(k, str))
    if event.source == "trivy":
        artifact = str(a.get("artifact") or event.entity)
        name = a.get("artifact_name")
        scopes = frozenset(
            f"trivy|{artifact}|{trivy_target(artifact, t, name)}"
            for t in a.get("targets") or []
            if isinstance(t, str)
        )
    else:
        scopes = frozenset({_sarif_scope(a.get("tool"), a.get("category"))})
    return ScanResolution(scopes=scopes, present=present, ts_ms=event.ts_ms, id=event.id)


def alert_from_anomaly(anomaly: dict[str, Any]) -> AlertInput:
    """The alert for one `vigil.anomalies` record (tables/series_windows.py `_anomaly`)."""
    entity = str(anomaly["entity"])
    labels = _labels(
        alertname="Anomaly",
        entity=entity,
        source="anomaly",
        series=anomaly.get("series"),
        series_kind=anomaly.get("kind"),
        name=anomaly.get("name"),
    )
    score = _number(anomaly.get("score")) or 0.0
    ts_ms = parse_time(anomaly["time"])
    annotations = _annotations(
        summary=anomaly.get("explanation"),
        value=anomaly.get("value"),
        expected=anomaly.get("expected"),
        score=score,
        window_start=anomaly.get("window_start"),
        window_end=anomaly.get("window_end"),
    )
    return AlertInput(
        id=str(anomaly.get("id") or ""),
        fingerprint=alertmanager_fingerprint(labels),
        entity=entity,
        kind="anomaly",
        source="anomaly",
        type="anomaly",
        labels=labels,
        annotations=annotations,
        status="firing",
        ts_ms=ts_ms,
        starts_ms=ts_ms,
        ends_ms=None,
        severity="high" if score >= 0.99 else "medium",
        scoring={"confidence": max(0.0, min(1.0, score))},
    )
