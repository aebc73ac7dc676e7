"""Changes reaching a repository or an environment: pushes and deployment statuses."""

from __future__ import annotations

from typing import Any

from app.sources.base import optional, require
from app.sources.ci_common import change_counts, ci_severity, first_time, split_ref
from app.sources.github.parsed import Parsed, field_times
from app.sources.github.runs import PROGRESS_STATUS

_NULL_SHA = "0" * 40


def deployment_status(body: dict[str, Any], repo: str, action: str | None) -> Parsed:
    status = require(body, "deployment_status", dict)
    deployment = optional(body, "deployment", dict, {})
    state = require(status, "state", str)
    ci_status = PROGRESS_STATUS.get(state, state)
    deployment_id = optional(deployment, "id", int)
    status_id = optional(status, "id", int)
    environment = optional(status, "environment", str) or optional(deployment, "environment", str)
    ts_ms, field = first_time(field_times(status, "deployment_status", "created_at", "updated_at"))
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
    return Parsed("deployment", ts_ms, field, ci_severity(ci_status), ids, attributes)


def push(body: dict[str, Any], repo: str, action: str | None) -> Parsed:
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
    return Parsed("push", ts_ms, field, "info", ("push", ref, before, after), attributes)
