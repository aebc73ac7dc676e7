"""GitHub security alerts: code scanning, Dependabot and secret scanning, each a finding with a
stable `finding_key`, its severity on Vigil's scale and the time of the transition reported."""

from __future__ import annotations

from typing import Any

from app.sources.base import optional, require
from app.sources.ci_common import compact, finding_key, first_time
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.github.parsed import Parsed, field_times

#: Alert severity labels (advisory, CodeQL security level, SARIF level) on Vigil's scale.
ALERT_SEVERITY: dict[str, str] = {
    "critical": "critical",
    "high": "high",
    "moderate": "medium",
    "medium": "medium",
    "low": "low",
    "error": "high",
    "warning": "medium",
    "note": "low",
    "none": "info",
}


#: Alert actions whose own timestamp field is the event time.
ACTION_TIME: dict[str, str] = {
    "fixed": "fixed_at",
    "dismissed": "dismissed_at",
    "closed_by_user": "dismissed_at",
    "auto_dismissed": "auto_dismissed_at",
    "resolved": "resolved_at",
}


def _alert_time(body: dict[str, Any], alert: dict[str, Any], action: str | None) -> tuple[int, str]:
    order = ["created_at", "updated_at"] if action == "created" else ["updated_at", "created_at"]
    if action in ACTION_TIME:
        order.insert(0, ACTION_TIME[action])
    candidates = field_times(alert, "alert", *order)
    candidates.append(("repository.updated_at", optional(body, "repository.updated_at")))
    return first_time(candidates)


def _alert_severity(label: str | None) -> str:
    if label is None:
        return "medium"
    severity = ALERT_SEVERITY.get(label.lower())
    if severity is None:
        raise NormalizeError(ErrorCode.INVALID_VALUE, f"unknown alert severity {label!r}")
    return severity


def code_scanning_alert(body: dict[str, Any], repo: str, action: str | None) -> Parsed:
    alert = require(body, "alert", dict)
    number = require(alert, "number", int)
    state = optional(alert, "state", str)
    rule_id = optional(alert, "rule.id", str)
    security_level = optional(alert, "rule.security_severity_level", str)
    label = security_level or optional(alert, "rule.severity", str)
    instance = optional(alert, "most_recent_instance", dict)
    if instance is None:
        instances = optional(alert, "instances", list, [])
        instance = next((i for i in instances if isinstance(i, dict)), {})
    ts_ms, field = _alert_time(body, alert, action)
    attributes = {
        "alert_number": number,
        "state": state,
        "rule_id": rule_id,
        "rule_description": optional(alert, "rule.description", str),
        "tool": optional(alert, "tool.name", str),
        "severity_label": label,
        "rule_severity": optional(alert, "rule.severity", str),
        "path": optional(instance, "location.path", str),
        "start_line": optional(instance, "location.start_line", int),
        "ref": optional(body, "ref", str) or optional(instance, "ref", str),
        "commit_sha": optional(body, "commit_oid", str) or optional(instance, "commit_sha", str),
        "dismissed_reason": optional(alert, "dismissed_reason", str),
        "url": optional(alert, "html_url", str),
        "finding_key": finding_key("github", repo, "code_scanning_alert", number),
    }
    ids = ("code_scanning_alert", number, state)
    severity = _alert_severity(label)
    return Parsed("code_scanning_alert", ts_ms, field, severity, ids, attributes)


def _epss(advisory: dict[str, Any]) -> dict[str, Any] | None:
    epss = advisory.get("epss")
    if isinstance(epss, list):
        epss = next((e for e in epss if isinstance(e, dict)), None)
    if not isinstance(epss, dict):
        return None
    return compact({"percentage": epss.get("percentage"), "percentile": epss.get("percentile")})


def dependabot_alert(body: dict[str, Any], repo: str, action: str | None) -> Parsed:
    alert = require(body, "alert", dict)
    number = require(alert, "number", int)
    state = optional(alert, "state", str)
    advisory = optional(alert, "security_advisory", dict, {})
    vulnerability = optional(alert, "security_vulnerability", dict, {})
    label = optional(advisory, "severity", str) or optional(vulnerability, "severity", str)
    ghsa = optional(advisory, "ghsa_id", str)
    cwes = optional(advisory, "cwes", list, [])
    ts_ms, field = _alert_time(body, alert, action)
    attributes = {
        "alert_number": number,
        "state": state,
        "rule_id": ghsa,
        "tool": "dependabot",
        "severity_label": label,
        "ghsa_id": ghsa,
        "cve_id": optional(advisory, "cve_id", str),
        "summary": optional(advisory, "summary", str),
        "cvss_score": optional(advisory, "cvss.score", float),
        "cwe_ids": [c["cwe_id"] for c in cwes if isinstance(c, dict) and "cwe_id" in c] or None,
        "epss": _epss(advisory),
        "package": optional(alert, "dependency.package.name", str),
        "ecosystem": optional(alert, "dependency.package.ecosystem", str),
        "manifest_path": optional(alert, "dependency.manifest_path", str),
        "scope": optional(alert, "dependency.scope", str),
        "vulnerable_version_range": optional(vulnerability, "vulnerable_version_range", str),
        "fixed_version": optional(vulnerability, "first_patched_version.identifier", str),
        "dismissed_reason": optional(alert, "dismissed_reason", str),
        "url": optional(alert, "html_url", str),
        "finding_key": finding_key("github", repo, "dependabot_alert", number),
    }
    ids = ("dependabot_alert", number, state)
    severity = _alert_severity(label)
    return Parsed("dependabot_alert", ts_ms, field, severity, ids, attributes)


def secret_scanning_alert(body: dict[str, Any], repo: str, action: str | None) -> Parsed:
    alert = require(body, "alert", dict)
    number = require(alert, "number", int)
    resolution = optional(alert, "resolution", str)
    # GitHub's secret alerts are open until resolved; older payloads omit `state`.
    state = optional(alert, "state", str) or ("resolved" if resolution else "open")
    secret_type = optional(alert, "secret_type", str)
    ts_ms, field = _alert_time(body, alert, action)
    # The alert's `secret` (the leaked credential itself) is deliberately never read.
    attributes = {
        "alert_number": number,
        "state": state,
        "rule_id": secret_type,
        "tool": "secret_scanning",
        "secret_type": secret_type,
        "secret_type_display_name": optional(alert, "secret_type_display_name", str),
        "resolution": resolution,
        "validity": optional(alert, "validity", str),
        "push_protection_bypassed": optional(alert, "push_protection_bypassed", bool),
        "url": optional(alert, "html_url", str),
        "finding_key": finding_key("github", repo, "secret_scanning_alert", number),
    }
    ids = ("secret_scanning_alert", number, state)
    return Parsed("secret_scanning_alert", ts_ms, field, "high", ids, attributes)
