"""Canonical events -> alert instances: stable labels, fingerprint, status and scoring inputs.

An alert's identity is its label set, as in Prometheus Alertmanager (REFERENCE.md): labels hold
only what names the problem (rule, entity, source, vulnerability id, package, target, ...),
never what drifts between two sightings of it (line numbers, severity, CVSS, fixed version,
timestamps, container ids, uuids, free text). Drifting details go into annotations, which are
shown but never compared.

Fingerprint:
- `prom_alert`: Alertmanager's FNV-1a 64-bit over the sender's labels
  (`app.model.fingerprints.alertmanager_fingerprint`), so it equals Alertmanager's own.
- findings (`vulnerability`, `misconfiguration`, `secret`, `sast_finding`, GitHub security
  alerts): the adapter's `finding_key` (tool + artifact + target + package + id, or the
  provider's alert number), which already leaves severity, CVSS and line numbers out.
- everything else: the same FNV-1a over the stable label set built here.

Kinds: `runtime` (Falco), `prom` (Alertmanager webhooks), `finding` (scanners and GitHub
security alerts), `anomaly` (`vigil.anomalies`), `ci` (failed workflow runs, jobs and
deployments; the next success of the same one resolves it) and `violation` (compliance rule
violations, built by tables/compliance/evaluation.py `violation_alert`).

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

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from app.model.alerts import AlertInput
from app.model.events import Event, parse_time
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

#: Reads one value off an event.
Getter = Callable[[Event], Any]
#: Labels, annotations or scoring inputs: attributes copied under their own names (a string of
#: space-separated names), or one (name, attribute name or getter) pair.
Field = str | tuple[str, str | Getter]


@dataclass(frozen=True, slots=True)
class AlertShape:
    """How events of one type become alerts. Labels start with `alertname`, `entity` and
    `source`; the fields follow in the order given (label sets keep their key order)."""

    kind: str
    #: A constant, or read off the event.
    alertname: str | Getter
    labels: tuple[Field, ...] = ()
    annotations: tuple[Field, ...] = ()
    scoring: tuple[Field, ...] = ()
    #: Identified by the adapter's `finding_key` (also annotated); without one, no alert.
    keyed: bool = False
    #: The alert's status, or None when the event reports no alert; default "firing".
    status: Getter | None = None
    scope: Getter | None = None


def _read(event: Event, fields: tuple[Field, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in fields:
        if isinstance(item, str):
            out.update((name, event.attributes.get(name)) for name in item.split())
        else:
            name, source = item
            out[name] = event.attributes.get(source) if isinstance(source, str) else source(event)
    return out


def _either(*names: str) -> Getter:
    """`a[n1] or a[n2] or ...`."""

    def get(event: Event) -> Any:
        value = None
        for name in names:
            value = event.attributes.get(name)
            if value:
                break
        return value

    return get


def _output_field(name: str) -> Getter:
    return lambda event: (event.attributes.get("output_fields") or {}).get(name)


def _tags(event: Event) -> str:
    return ",".join(t for t in event.attributes.get("tags") or [] if isinstance(t, str))


def _numeric(name: str) -> Getter:
    return lambda event: _number(event.attributes.get(name))


def _from_shape(shape: AlertShape, event: Event) -> AlertInput | None:
    key = event.attributes.get("finding_key") if shape.keyed else None
    status = shape.status(event) if shape.status is not None else "firing"
    if (shape.keyed and not key) or status is None:
        return None
    alertname = shape.alertname if isinstance(shape.alertname, str) else shape.alertname(event)
    labels = _labels(
        alertname=alertname,
        entity=event.entity,
        source=event.source,
        **_read(event, shape.labels),
    )
    annotations = _annotations(**_read(event, shape.annotations), finding_key=key)
    confidence = event.type if event.type in CONFIDENCE else shape.kind
    return _alert(
        event,
        shape.kind,
        labels,
        annotations,
        fingerprint=key,
        status=status,
        scoring=_scoring(confidence, **_read(event, shape.scoring)),
        scope=shape.scope(event) if shape.scope is not None else None,
    )


def _prom(event: Event) -> AlertInput:
    """Alertmanager's alerts keep the sender's labels, fingerprint, times and status."""
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


def _package(event: Event) -> Any:
    """A vulnerable package: its purl without version qualifiers, else its id or name."""
    purl = event.attributes.get("purl")
    if isinstance(purl, str) and purl:
        return purl.split("#", 1)[0].split("?", 1)[0]
    return event.attributes.get("pkg_id") or event.attributes.get("pkg_name")


def _kev(event: Event) -> bool | None:
    kev = event.attributes.get("kev")
    return kev if isinstance(kev, bool) else None


def _github_epss(event: Event) -> float | None:
    epss = event.attributes.get("epss")
    return _number(epss.get("percentage")) if isinstance(epss, dict) else None


def _github_status(event: Event) -> str:
    a = event.attributes
    state = a.get("state")
    closed = (
        state in RESOLVED_STATES
        if state
        else a.get("action") in ("fixed", "closed_by_user", "resolved", "auto_dismissed")
    )
    return "resolved" if closed else "firing"


def _ci_status(event: Event) -> str | None:
    """A failed run fires, a successful one resolves; anything else is no alert."""
    return {"failure": "firing", "success": "resolved"}.get(event.attributes.get("ci_status"))


def _sarif_event_scope(event: Event) -> str:
    return _sarif_scope(event.attributes.get("tool"), event.attributes.get("category"))


def _trivy_shape(alertname: str, labels: tuple[Field, ...], **rest: Any) -> AlertShape:
    """A Trivy finding: labelled by artifact and scoped target, scoped for scan resolution."""
    return AlertShape(
        kind="finding",
        alertname=alertname,
        labels=("artifact", ("target", lambda e: _trivy_scope(e)[0]), *labels),
        keyed=True,
        scope=lambda e: _trivy_scope(e)[1],
        **rest,
    )


_GITHUB = AlertShape(
    kind="finding",
    alertname="CodeScanningAlert",
    labels=("alert_number tool rule_id package manifest_path",),
    annotations=(
        ("summary", _either("summary", "rule_description", "secret_type_display_name")),
        "state cve_id fixed_version path start_line dismissed_reason resolution url",
    ),
    scoring=(("epss", _github_epss), ("cvss", _numeric("cvss_score")), "severity_label"),
    keyed=True,
    status=_github_status,
)
_CI = AlertShape(
    kind="ci",
    alertname="WorkflowFailed",
    labels=("workflow branch",),
    annotations=("conclusion run_id commit_sha failed_steps url",),
    status=_ci_status,
)

#: Event type -> how it becomes an alert (`prom_alert` keeps the sender's own, see `_prom`).
SHAPES: dict[str, AlertShape] = {
    "runtime_alert": AlertShape(
        kind="runtime",
        alertname=lambda e: e.attributes.get("rule"),
        labels=("falco_source namespace image",),
        annotations=(
            ("summary", "output"),
            "priority",
            ("tags", _tags),
            "container_id container_name image_tag pod user",
            ("command", _output_field("proc.cmdline")),
            ("file", _output_field("fd.name")),
        ),
    ),
    "vulnerability": _trivy_shape(
        "Vulnerability",
        (("package", _package), "pkg_path vulnerability_id"),
        annotations=(
            "title installed_version fixed_version severity_label cvss_vector primary_url target",
        ),
        scoring=(
            ("epss", _numeric("epss")),
            ("kev", _kev),
            "kev_ransomware",
            ("cvss", _numeric("cvss")),
            "severity_label",
        ),
    ),
    "misconfiguration": _trivy_shape(
        "Misconfiguration",
        (("check_id", _either("avd_id", "check_id")), "resource"),
        annotations=("title message resolution severity_label primary_url start_line",),
        scoring=("severity_label",),
    ),
    "secret": _trivy_shape(
        "ExposedSecret",
        ("rule_id",),
        annotations=("title category severity_label start_line",),
        scoring=("severity_label",),
    ),
    "sast_finding": AlertShape(
        kind="finding",
        alertname="SastFinding",
        labels=(("tool", lambda e: (e.attributes.get("tool") or "").lower()), "rule_id path"),
        annotations=("message rule_name rule_description help_uri level start_line cwe",),
        scoring=(("cvss", _numeric("security_severity")), ("severity_label", "level")),
        keyed=True,
        status=lambda e: "resolved" if e.attributes.get("suppressed") else "firing",
        scope=_sarif_event_scope,
    ),
    "code_scanning_alert": _GITHUB,
    "dependabot_alert": replace(_GITHUB, alertname="DependabotAlert"),
    "secret_scanning_alert": replace(_GITHUB, alertname="SecretScanningAlert"),
    "ci_run": _CI,
    "ci_job": replace(_CI, alertname="JobFailed", labels=("workflow job_name branch",)),
    "deployment": replace(
        _CI, alertname="DeploymentFailed", labels=("workflow environment branch",)
    ),
}


def alert_from_event(event: Event) -> AlertInput | None:
    """The alert instance an event reports, or None when the event is not alert-like."""
    if event.type == "prom_alert":
        return _prom(event)
    shape = SHAPES.get(event.type)
    return _from_shape(shape, event) if shape is not None else None


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
    """The alert for one `vigil.anomalies` record (tables/windows/series_windows.py `_anomaly`)."""
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
