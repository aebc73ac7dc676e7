"""The GitHub adapter: detects a delivery's event kind, bare or enveloped, and hands the body
to that kind's parser."""

from __future__ import annotations

from typing import Any

from app.model.events import Event, event_id
from app.sources.base import optional, require, require_object
from app.sources.ci_common import compact
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.github.alerts import code_scanning_alert, dependabot_alert, secret_scanning_alert
from app.sources.github.changes import deployment_status, push
from app.sources.github.runs import check_run, check_suite, workflow_job, workflow_run

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


PARSERS = {
    "workflow_run": workflow_run,
    "workflow_job": workflow_job,
    "check_run": check_run,
    "check_suite": check_suite,
    "deployment_status": deployment_status,
    "push": push,
    "code_scanning_alert": code_scanning_alert,
    "dependabot_alert": dependabot_alert,
    "secret_scanning_alert": secret_scanning_alert,
}


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
        parsed = PARSERS[kind](body, repo, action)
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
