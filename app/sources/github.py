"""GitHub webhook bodies (Actions, checks, deployments, pushes, security alerts), bare or enveloped.

Source of truth: GitHub's webhook payload documentation and the octokit/webhooks payload
examples (`payload-examples/api.github.com/`). The envelope is Probot's event object
`{"name": <X-GitHub-Event>, "id": <X-GitHub-Delivery>, "payload": <body>}`; a bare body carries
no event name, so its kind is detected from its top-level keys. The delivery id never enters
the event id, so a body gives the same event bare or enveloped.

Event time per kind (always a field of the record, never the clock; `time_field` says which):
- workflow_run, check_suite (`ci_run`): `updated_at`, the status change this delivery reports
  (the completion time of a completed run); else `run_started_at` / `created_at`.
- workflow_job, check_run (`ci_job`): `completed_at` once completed, `started_at` while in
  progress, `created_at` while queued, each falling back to the others.
- deployment_status (`deployment`): `deployment_status.created_at`, else its `updated_at`.
- push: `repository.pushed_at` (the push itself; a commit's timestamp can be days older),
  else `head_commit.timestamp`.
- alerts: the transition's own stamp (`fixed_at`, `dismissed_at`, `resolved_at`, ...), then
  `created_at` (for `created`) or `updated_at` (later transitions); last resort
  `repository.updated_at`, because octokit's secret-scanning example carries no alert time.

The helpers marked "shared" are also used by the GitLab adapter, so both providers emit the
same `ci_status` vocabulary, severities and attribute names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from app.events import Event, event_id, parse_time
from app.sources.base import optional, require, require_object
from app.sources.errors import ErrorCode, NormalizeError

#: Job or workflow names that look like a security job: their failures rank high.
SECURITY_NAME = re.compile(
    r"security|scan|codeql|sast|dast|trivy|snyk|grype|semgrep|gitleaks|secret|dependency|vuln",
    re.IGNORECASE,
)

#: GitHub check/run conclusions -> the common `ci_status` (the raw value stays in `conclusion`).
CONCLUSION_STATUS: dict[str, str] = {
    "success": "success",
    "failure": "failure",
    "timed_out": "failure",
    "startup_failure": "failure",
    "cancelled": "cancelled",
    "skipped": "skipped",
    "neutral": "neutral",
    "action_required": "action_required",
    "stale": "stale",
}

#: GitHub statuses of unfinished runs, jobs and deployments -> the common `ci_status`.
PROGRESS_STATUS: dict[str, str] = {
    "requested": "queued",
    "queued": "queued",
    "pending": "queued",
    "waiting": "waiting",
    "in_progress": "in_progress",
    "error": "failure",
    "failure": "failure",
    "success": "success",
    "inactive": "inactive",
}

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

_NULL_SHA = "0" * 40


class _Parsed(NamedTuple):
    type: str
    ts_ms: int
    time_field: str
    severity: str
    ids: tuple[Any, ...]
    attributes: dict[str, Any]


# ---- shared helpers (GitHub and GitLab) -------------------------------------------------


def ci_severity(ci_status: str | None, *names: str | None) -> str:
    """Shared: severity of a run/job/deployment from its `ci_status` and names.

    failure -> medium (high when a name looks like a security job), cancelled -> low,
    anything else (success, in progress, skipped, ...) -> info.
    """
    if ci_status == "failure":
        return "high" if any(n and SECURITY_NAME.search(n) for n in names) else "medium"
    if ci_status == "cancelled":
        return "low"
    return "info"


def first_time(candidates: Iterable[tuple[str, Any]]) -> tuple[int, str]:
    """Shared: the first present `(field, value)` as epoch ms plus the field's name.

    A present but unparseable value is INVALID_VALUE; none present is MISSING_FIELD.
    """
    names = []
    for name, value in candidates:
        names.append(name)
        if value is None or value == "":
            continue
        try:
            return parse_time(value), name
        except ValueError:
            raise NormalizeError(
                ErrorCode.INVALID_VALUE, f"'{name}' is not a timestamp: {value!r}"
            ) from None
    raise NormalizeError(ErrorCode.MISSING_FIELD, f"no usable time (looked for {', '.join(names)})")


def duration_s(start: Any, end: Any) -> float | None:
    """Shared: seconds from `start` to `end` when both parse and are ordered, else None."""
    try:
        begin, finish = parse_time(start), parse_time(end)
    except ValueError:
        return None
    return (finish - begin) / 1000 if finish >= begin else None


def change_counts(commits: list[Any]) -> dict[str, int]:
    """Shared: distinct added/modified/removed paths over a push's commits."""
    paths: dict[str, set[str]] = {"added": set(), "modified": set(), "removed": set()}
    for commit in commits:
        if not isinstance(commit, dict):
            continue
        for key, seen in paths.items():
            files = commit.get(key)
            if isinstance(files, list):
                seen.update(f for f in files if isinstance(f, str))
    return {f"files_{key}": len(seen) for key, seen in paths.items()}


def finding_key(provider: str, *parts: Any) -> str:
    """Shared: a stable finding identity (SHA-256 hex); never built from severity."""
    return hashlib.sha256("|".join([provider, *map(str, parts)]).encode()).hexdigest()


def split_ref(ref: str | None) -> dict[str, str]:
    """Shared: `refs/heads/x` -> {"branch": x}; `refs/tags/x` -> {"tag": x}."""
    if not ref:
        return {}
    if ref.startswith("refs/tags/"):
        return {"tag": ref.removeprefix("refs/tags/")}
    return {"branch": ref.removeprefix("refs/heads/")}


def compact(attributes: dict[str, Any]) -> dict[str, Any]:
    """Shared: drop absent (None) attributes."""
    return {key: value for key, value in attributes.items() if value is not None}


# ---- detection --------------------------------------------------------------------------

#: X-GitHub-Event names this adapter reads.
EVENT_KINDS: frozenset[str] = frozenset(
    {
        "workflow_run",
        "workflow_job",
        "check_run",
        "check_suite",
        "deployment_status",
        "push",
        "code_scanning_alert",
        "dependabot_alert",
        "secret_scanning_alert",
    }
)

#: Keys that identify a bare body on their own; tried in this order (a deployment_status
#: body from Actions also carries `workflow_run` and `check_run`).
_KIND_KEYS = ("deployment_status", "workflow_job", "workflow_run", "check_run", "check_suite")


def detect_kind(body: Any) -> str | None:
    """The X-GitHub-Event name of a bare webhook body, or None when it is not one we read."""
    if not isinstance(body, dict) or "object_kind" in body:
        return None
    for key in _KIND_KEYS:
        if isinstance(body.get(key), dict):
            return key
    if not isinstance(body.get("repository"), dict):
        return None
    alert = body.get("alert")
    if isinstance(alert, dict):
        if "secret_type" in alert:
            return "secret_scanning_alert"
        if "security_advisory" in alert or "dependency" in alert:
            return "dependabot_alert"
        if "rule" in alert or "tool" in alert:
            return "code_scanning_alert"
        return None
    if isinstance(body.get("commits"), list) and isinstance(body.get("ref"), str):
        return "push"
    return None


def _is_envelope(doc: dict[str, Any]) -> bool:
    return "payload" in doc and "name" in doc and "repository" not in doc


class GitHubAdapter:
    """One event per GitHub webhook delivery, keyed by `repo:<owner/name>`."""

    name = "github"
    family = "ci"

    def matches(self, doc: Any) -> bool:
        if not isinstance(doc, dict) or "object_kind" in doc:
            return False
        if _is_envelope(doc):
            name = doc.get("name")
            known = isinstance(name, str) and name in EVENT_KINDS
            return known or detect_kind(doc.get("payload")) is not None
        return detect_kind(doc) is not None

    def normalize(self, doc: Any, raw: bytes) -> list[Event]:
        record = require_object(doc, "GitHub webhook")
        delivery_id = None
        kind = None
        body = record
        if _is_envelope(record):
            kind = require(record, "name", str)
            delivery_id = optional(record, "id", (str, int))
            body = require(record, "payload", dict)
            if kind not in EVENT_KINDS:
                kind = detect_kind(body)
        else:
            kind = detect_kind(body)
        if kind is None:
            raise NormalizeError(ErrorCode.INVALID_VALUE, "unsupported GitHub webhook event")
        repo = require(body, "repository.full_name", str)
        action = optional(body, "action", str)
        parsed = _PARSERS[kind](body, repo, action)
        attributes = {
            "provider": "github",
            "github_event": kind,
            "action": action,
            "repository": repo,
            "actor": optional(body, "sender.login", str),
            **compact(parsed.attributes),
            "time_field": parsed.time_field,
        }
        if delivery_id is not None:
            attributes["delivery_id"] = str(delivery_id)
        return [
            Event(
                id=event_id(self.name, kind, repo, action or "", *parsed.ids, parsed.ts_ms),
                source=self.name,
                type=parsed.type,
                ts_ms=parsed.ts_ms,
                entity=f"repo:{repo}",
                severity=parsed.severity,
                attributes=compact(attributes),
            )
        ]


# ---- per-kind parsers -------------------------------------------------------------------


def github_ci_status(status: str, conclusion: str | None) -> str:
    """A GitHub status/conclusion pair as the common `ci_status`."""
    if conclusion:
        return CONCLUSION_STATUS.get(conclusion, conclusion)
    return PROGRESS_STATUS.get(status, status)


def _pr_numbers(obj: dict[str, Any]) -> list[int] | None:
    prs = optional(obj, "pull_requests", list, [])
    numbers = [pr["number"] for pr in prs if isinstance(pr, dict) and type(pr.get("number")) is int]
    return numbers or None


def _times(obj: dict[str, Any], prefix: str, *fields: str) -> list[tuple[str, Any]]:
    return [(f"{prefix}.{name}", obj.get(name)) for name in fields]


def _workflow_run(body: dict[str, Any], repo: str, action: str | None) -> _Parsed:
    run = require(body, "workflow_run", dict)
    run_id = require(run, "id", int)
    status = require(run, "status", str)
    conclusion = optional(run, "conclusion", str)
    ci_status = github_ci_status(status, conclusion)
    workflow = optional(run, "name", str) or optional(body, "workflow.name", str)
    ts_ms, field = first_time(
        _times(run, "workflow_run", "updated_at", "run_started_at", "created_at")
    )
    attempt = optional(run, "run_attempt", int)
    done = status == "completed"
    attributes = {
        "ci_status": ci_status,
        "status": status,
        "conclusion": conclusion,
        "workflow": workflow,
        "workflow_id": optional(run, "workflow_id", int),
        "workflow_path": optional(run, "path", str),
        "run_id": run_id,
        "run_attempt": attempt,
        "run_number": optional(run, "run_number", int),
        "check_suite_id": optional(run, "check_suite_id", int),
        "branch": optional(run, "head_branch", str),
        "commit_sha": optional(run, "head_sha", str),
        "title": optional(run, "display_title", str),
        "event": optional(run, "event", str),
        "triggered_by": optional(run, "actor.login", str),
        "url": optional(run, "html_url", str),
        "pull_requests": _pr_numbers(run),
        "duration_s": duration_s(run.get("run_started_at"), run.get("updated_at"))
        if done
        else None,
    }
    ids = ("workflow_run", run_id, attempt, status, conclusion)
    return _Parsed("ci_run", ts_ms, field, ci_severity(ci_status, workflow), ids, attributes)


def _check_suite(body: dict[str, Any], repo: str, action: str | None) -> _Parsed:
    suite = require(body, "check_suite", dict)
    suite_id = require(suite, "id", int)
    status = require(suite, "status", str)
    conclusion = optional(suite, "conclusion", str)
    ci_status = github_ci_status(status, conclusion)
    app = optional(suite, "app.name", str)
    ts_ms, field = first_time(_times(suite, "check_suite", "updated_at", "created_at"))
    done = status == "completed"
    attributes = {
        "ci_status": ci_status,
        "status": status,
        "conclusion": conclusion,
        "workflow": app,
        "app": optional(suite, "app.slug", str),
        "run_id": suite_id,
        "branch": optional(suite, "head_branch", str),
        "commit_sha": optional(suite, "head_sha", str),
        "pull_requests": _pr_numbers(suite),
        "duration_s": duration_s(suite.get("created_at"), suite.get("updated_at"))
        if done
        else None,
    }
    ids = ("check_suite", suite_id, status, conclusion)
    return _Parsed("ci_run", ts_ms, field, ci_severity(ci_status, app), ids, attributes)


def _job_times(job: dict[str, Any], prefix: str, status: str) -> list[tuple[str, Any]]:
    if status == "completed":
        order = ("completed_at", "started_at", "created_at")
    elif status == "in_progress":
        order = ("started_at", "created_at")
    else:
        order = ("created_at", "started_at")
    return _times(job, prefix, *order)


def _workflow_job(body: dict[str, Any], repo: str, action: str | None) -> _Parsed:
    job = require(body, "workflow_job", dict)
    job_id = require(job, "id", int)
    status = require(job, "status", str)
    conclusion = optional(job, "conclusion", str)
    ci_status = github_ci_status(status, conclusion)
    name = optional(job, "name", str)
    workflow = optional(job, "workflow_name", str)
    ts_ms, field = first_time(_job_times(job, "workflow_job", status))
    attempt = optional(job, "run_attempt", int)
    steps = optional(job, "steps", list, [])
    failed = [
        s.get("name")
        for s in steps
        if isinstance(s, dict) and s.get("conclusion") in ("failure", "timed_out")
    ]
    attributes = {
        "ci_status": ci_status,
        "status": status,
        "conclusion": conclusion,
        "workflow": workflow,
        "job_name": name,
        "job_id": job_id,
        "run_id": optional(job, "run_id", int),
        "run_attempt": attempt,
        "branch": optional(job, "head_branch", str),
        "commit_sha": optional(job, "head_sha", str),
        "runner_name": optional(job, "runner_name", str),
        "labels": optional(job, "labels", list),
        "failed_steps": failed or None,
        "url": optional(job, "html_url", str),
        "duration_s": duration_s(job.get("started_at"), job.get("completed_at")),
    }
    severity = ci_severity(ci_status, workflow, name)
    ids = ("workflow_job", job_id, attempt, status, conclusion)
    return _Parsed("ci_job", ts_ms, field, severity, ids, attributes)


def _check_run(body: dict[str, Any], repo: str, action: str | None) -> _Parsed:
    check = require(body, "check_run", dict)
    check_id = require(check, "id", int)
    status = require(check, "status", str)
    conclusion = optional(check, "conclusion", str)
    ci_status = github_ci_status(status, conclusion)
    name = optional(check, "name", str)
    app = optional(check, "app.name", str)
    ts_ms, field = first_time(_job_times(check, "check_run", status))
    attributes = {
        "ci_status": ci_status,
        "status": status,
        "conclusion": conclusion,
        "workflow": app,
        "job_name": name,
        "job_id": check_id,
        "run_id": optional(check, "check_suite.id", int),
        "branch": optional(check, "check_suite.head_branch", str),
        "commit_sha": optional(check, "head_sha", str),
        "url": optional(check, "html_url", str),
        "pull_requests": _pr_numbers(check),
        "duration_s": duration_s(check.get("started_at"), check.get("completed_at")),
    }
    severity = ci_severity(ci_status, app, name)
    return _Parsed(
        "ci_job", ts_ms, field, severity, ("check_run", check_id, status, conclusion), attributes
    )


def _deployment_status(body: dict[str, Any], repo: str, action: str | None) -> _Parsed:
    status = require(body, "deployment_status", dict)
    deployment = optional(body, "deployment", dict, {})
    state = require(status, "state", str)
    ci_status = PROGRESS_STATUS.get(state, state)
    deployment_id = optional(deployment, "id", int)
    status_id = optional(status, "id", int)
    environment = optional(status, "environment", str) or optional(deployment, "environment", str)
    ts_ms, field = first_time(_times(status, "deployment_status", "created_at", "updated_at"))
    url = (
        optional(status, "target_url", str)
        or optional(status, "log_url", str)
        or optional(status, "environment_url", str)
    )
    attributes = {
        "ci_status": ci_status,
        "deployment_state": state,
        "environment": environment,
        "deployment_id": deployment_id,
        "deployment_status_id": status_id,
        "production_environment": optional(deployment, "production_environment", bool),
        "task": optional(deployment, "task", str),
        "branch": optional(deployment, "ref", str),
        "commit_sha": optional(deployment, "sha", str),
        "deployed_by": optional(deployment, "creator.login", str),
        "workflow": optional(body, "workflow_run.name", str),
        "run_id": optional(body, "workflow_run.id", int),
        "url": url or None,
    }
    ids = ("deployment_status", deployment_id, status_id, state)
    return _Parsed("deployment", ts_ms, field, ci_severity(ci_status), ids, attributes)


def _push(body: dict[str, Any], repo: str, action: str | None) -> _Parsed:
    ref = require(body, "ref", str)
    before = optional(body, "before", str)
    after = optional(body, "after", str)
    commits = optional(body, "commits", list, [])
    ts_ms, field = first_time(
        [
            ("repository.pushed_at", optional(body, "repository.pushed_at")),
            ("head_commit.timestamp", optional(body, "head_commit.timestamp")),
        ]
    )
    attributes = {
        "ref": ref,
        **split_ref(ref),
        "before_sha": before,
        "commit_sha": after if after and after != _NULL_SHA else None,
        "commit_count": len(commits),
        **change_counts(commits),
        "created": optional(body, "created", bool),
        "deleted": optional(body, "deleted", bool),
        "forced": optional(body, "forced", bool),
        "base_ref": optional(body, "base_ref", str),
        "pusher": optional(body, "pusher.name", str),
        "url": optional(body, "compare", str),
    }
    return _Parsed("push", ts_ms, field, "info", ("push", ref, before, after), attributes)


def _alert_time(body: dict[str, Any], alert: dict[str, Any], action: str | None) -> tuple[int, str]:
    order = ["created_at", "updated_at"] if action == "created" else ["updated_at", "created_at"]
    if action in ACTION_TIME:
        order.insert(0, ACTION_TIME[action])
    candidates = _times(alert, "alert", *order)
    candidates.append(("repository.updated_at", optional(body, "repository.updated_at")))
    return first_time(candidates)


def _alert_severity(label: str | None) -> str:
    if label is None:
        return "medium"
    severity = ALERT_SEVERITY.get(label.lower())
    if severity is None:
        raise NormalizeError(ErrorCode.INVALID_VALUE, f"unknown alert severity {label!r}")
    return severity


def _code_scanning(body: dict[str, Any], repo: str, action: str | None) -> _Parsed:
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
    return _Parsed("code_scanning_alert", ts_ms, field, severity, ids, attributes)


def _epss(advisory: dict[str, Any]) -> dict[str, Any] | None:
    epss = advisory.get("epss")
    if isinstance(epss, list):
        epss = next((e for e in epss if isinstance(e, dict)), None)
    if not isinstance(epss, dict):
        return None
    return compact({"percentage": epss.get("percentage"), "percentile": epss.get("percentile")})


def _dependabot(body: dict[str, Any], repo: str, action: str | None) -> _Parsed:
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
    return _Parsed("dependabot_alert", ts_ms, field, severity, ids, attributes)


def _secret_scanning(body: dict[str, Any], repo: str, action: str | None) -> _Parsed:
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
    return _Parsed("secret_scanning_alert", ts_ms, field, "high", ids, attributes)


_PARSERS = {
    "workflow_run": _workflow_run,
    "workflow_job": _workflow_job,
    "check_run": _check_run,
    "check_suite": _check_suite,
    "deployment_status": _deployment_status,
    "push": _push,
    "code_scanning_alert": _code_scanning,
    "dependabot_alert": _dependabot,
    "secret_scanning_alert": _secret_scanning,
}
