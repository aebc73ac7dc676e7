"""GitLab webhook bodies: pipeline, job (`build`), deployment, merge request and push events.

Source of truth: GitLab's "Webhook events" documentation (doc/user/project/integrations/
webhook_events.md) and the examples vendored by the go-gitlab client (testdata/webhooks/).
The kind is the body's `object_kind`. Event types and attribute names are those of the GitHub
adapter (app/sources/github/), so later stages read both providers the same way.

GitLab writes times as `2016-08-12 15:23:28 UTC`, which app.model.events.parse_time does not read;
they are rewritten to `...Z` here first. Event time per kind (`time_field` says which):
- pipeline (`ci_run`): `finished_at` once finished, else `created_at`.
- build (`ci_job`): `build_finished_at` once finished, `build_started_at` while running,
  `build_created_at` while waiting, each falling back to the others.
- deployment: `status_changed_at`.
- merge_request: `object_attributes.updated_at`, else `created_at`.
- push / tag_push: the timestamp of the pushed head commit (GitLab sends no push time); a
  push with no commits (a branch or tag deletion) has no usable time and is rejected.
Pipeline `variables` are never emitted: they may hold credentials.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from app.model.events import Event, event_id
from app.sources.base import optional, require, require_object
from app.sources.ci_common import change_counts, ci_severity, compact, first_time, split_ref
from app.sources.errors import ErrorCode, NormalizeError

#: GitLab pipeline/job/deployment statuses -> the common `ci_status`.
GITLAB_STATUS: dict[str, str] = {
    "created": "queued",
    "waiting_for_resource": "queued",
    "waiting_for_callback": "queued",
    "preparing": "queued",
    "pending": "queued",
    "scheduled": "queued",
    "running": "in_progress",
    "canceling": "in_progress",
    "success": "success",
    "failed": "failure",
    "canceled": "cancelled",
    "skipped": "skipped",
    "manual": "manual",
    "blocked": "waiting",
}

#: Statuses after which a pipeline or job will not change again (until retried).
FINISHED = frozenset({"success", "failed", "canceled", "skipped"})

#: The `object_kind` values this adapter reads (`tag_push` is read like `push`).
KINDS = ("pipeline", "build", "deployment", "merge_request", "push", "tag_push")

_NULL_SHA = "0" * 40
_FULL_SHA = re.compile(r"[0-9a-f]{40}")


def gitlab_time(value: Any) -> Any:
    """`2016-08-12 15:23:28 UTC` -> `2016-08-12 15:23:28Z` (other values pass unchanged)."""
    if isinstance(value, str) and value.endswith(" UTC"):
        return value[:-4] + "Z"
    return value


def _times(obj: dict[str, Any], prefix: str, *fields: str) -> list[tuple[str, Any]]:
    return [(f"{prefix}{name}", gitlab_time(obj.get(name))) for name in fields]


def _seconds(value: float | None) -> float | None:
    return float(value) if value is not None else None


def _ref(ref: str | None, is_tag: Any) -> dict[str, str]:
    if not ref:
        return {}
    return {"tag": ref} if is_tag is True else {"branch": ref}


def project_path(body: dict[str, Any]) -> str:
    """`project.path_with_namespace`; job events lack it, so read it from the repository URLs."""
    path = optional(body, "project.path_with_namespace", str)
    if path:
        return path
    repository = optional(body, "repository", dict, {})
    for key in ("git_ssh_url", "url"):  # scp form: git@host:group/project.git
        value = repository.get(key)
        if isinstance(value, str) and "://" not in value and ":" in value:
            found = value.split(":", 1)[1].removesuffix(".git").strip("/")
            if found:
                return found
    for key in ("homepage", "git_http_url"):
        value = repository.get(key)
        if isinstance(value, str) and "://" in value:
            found = urlsplit(value).path.removesuffix(".git").strip("/")
            if found:
                return found
    raise NormalizeError(
        ErrorCode.MISSING_FIELD, "required field 'project.path_with_namespace' is missing"
    )


class GitLabAdapter:
    """One event per GitLab webhook body, keyed by `repo:<path_with_namespace>`."""

    name = "gitlab"
    family = "ci"

    def matches(self, doc: Any) -> bool:
        return isinstance(doc, dict) and doc.get("object_kind") in KINDS

    def normalize(self, doc: Any, raw: bytes) -> list[Event]:
        record = require_object(doc, "GitLab webhook")
        kind = require(record, "object_kind", str)
        if kind not in KINDS:
            raise NormalizeError(ErrorCode.INVALID_VALUE, f"unsupported object_kind {kind!r}")
        path = project_path(record)
        event_type, ts_ms, field, severity, ids, attributes = _PARSERS[kind](record)
        project_id = optional(record, "project.id", int) or optional(record, "project_id", int)
        common = {
            "provider": "gitlab",
            "gitlab_event": kind,
            "repository": path,
            "project_id": project_id,
            "actor": optional(record, "user.username", str),
        }
        return [
            Event(
                id=event_id(self.name, kind, path, *ids, ts_ms),
                source=self.name,
                type=event_type,
                ts_ms=ts_ms,
                entity=f"repo:{path}",
                severity=severity,
                attributes=compact({**common, **attributes, "time_field": field}),
            )
        ]


Parsed = tuple[str, int, str, str, tuple[Any, ...], dict[str, Any]]


def _status(status: str) -> tuple[str, str | None]:
    """(`ci_status`, raw `conclusion` once finished)."""
    return GITLAB_STATUS.get(status, status), status if status in FINISHED else None


def _pipeline(body: dict[str, Any]) -> Parsed:
    pipeline = require(body, "object_attributes", dict)
    pipeline_id = require(pipeline, "id", int)
    status = require(pipeline, "status", str)
    ci_status, conclusion = _status(status)
    order = ("finished_at", "created_at") if conclusion else ("created_at",)
    ts_ms, field = first_time(_times(pipeline, "object_attributes.", *order))
    name = optional(pipeline, "name", str)
    builds = [b for b in optional(body, "builds", list, []) if isinstance(b, dict)]
    failed = [
        b for b in builds if b.get("status") == "failed" and b.get("allow_failure") is not True
    ]
    failed_names = [b["name"] for b in failed if isinstance(b.get("name"), str)]
    failed_stages = [b["stage"] for b in failed if isinstance(b.get("stage"), str)]
    mr_iid = optional(body, "merge_request.iid", int)
    web_url = optional(body, "project.web_url", str)
    url = optional(pipeline, "url", str) or (
        f"{web_url}/-/pipelines/{pipeline_id}" if web_url else None
    )
    attributes = {
        "ci_status": ci_status,
        "status": status,
        "conclusion": conclusion,
        "detailed_status": optional(pipeline, "detailed_status", str),
        "workflow": name,
        "run_id": pipeline_id,
        "run_number": optional(pipeline, "iid", int),
        **_ref(optional(pipeline, "ref", str), pipeline.get("tag")),
        "commit_sha": optional(pipeline, "sha", str),
        "before_sha": optional(pipeline, "before_sha", str),
        "event": optional(pipeline, "source", str),
        "url": url,
        "duration_s": _seconds(optional(pipeline, "duration", float)),
        "queued_duration_s": _seconds(optional(pipeline, "queued_duration", float)),
        "stages": optional(pipeline, "stages", list),
        "jobs_total": len(builds),
        "failed_jobs": failed_names or None,
        "pull_requests": [mr_iid] if mr_iid is not None else None,
    }
    severity = ci_severity(ci_status, name, *failed_names, *failed_stages)
    return "ci_run", ts_ms, field, severity, ("pipeline", pipeline_id, status), attributes


def _build(body: dict[str, Any]) -> Parsed:
    job_id = require(body, "build_id", int)
    status = require(body, "build_status", str)
    ci_status, conclusion = _status(status)
    if conclusion:
        order = ("build_finished_at", "build_started_at", "build_created_at")
    elif status == "running":
        order = ("build_started_at", "build_created_at")
    else:
        order = ("build_created_at", "build_started_at")
    ts_ms, field = first_time(_times(body, "", *order))
    name = optional(body, "build_name", str)
    stage = optional(body, "build_stage", str)
    allow_failure = optional(body, "build_allow_failure", bool)
    retries = optional(body, "retries_count", int)
    if retries is not None and not 0 <= retries < 2**63 - 1:  # run_attempt must fit in int64
        raise NormalizeError(ErrorCode.INVALID_VALUE, f"'retries_count' is out of range: {retries}")
    homepage = optional(body, "repository.homepage", str)
    severity = ci_severity(ci_status, name, stage)
    if ci_status == "failure" and allow_failure:
        severity = "low"  # an allowed failure does not fail the pipeline
    attributes = {
        "ci_status": ci_status,
        "status": status,
        "conclusion": conclusion,
        "workflow": optional(body, "commit.name", str),  # the job hook's `commit` is the pipeline
        "job_name": name,
        "job_id": job_id,
        "stage": stage,
        "run_id": optional(body, "pipeline_id", int),
        "run_attempt": retries + 1 if retries is not None else None,
        **_ref(optional(body, "ref", str), body.get("tag")),
        "commit_sha": optional(body, "sha", str),
        "failure_reason": optional(body, "build_failure_reason", str)
        if status == "failed"
        else None,
        "allow_failure": allow_failure,
        "duration_s": _seconds(optional(body, "build_duration", float)),
        "queued_duration_s": _seconds(optional(body, "build_queued_duration", float)),
        "runner_name": optional(body, "runner.description", str),
        "labels": optional(body, "runner.tags", list),
        "environment": optional(body, "environment.name", str),
        "url": f"{homepage}/-/jobs/{job_id}" if homepage else None,
    }
    return "ci_job", ts_ms, field, severity, ("build", job_id, status), attributes


def _deployment(body: dict[str, Any]) -> Parsed:
    deployment_id = require(body, "deployment_id", int)
    status = require(body, "status", str)
    ci_status = GITLAB_STATUS.get(status, status)
    ts_ms, field = first_time(_times(body, "", "status_changed_at"))
    commit_url = optional(body, "commit_url", str) or ""
    tail = commit_url.rstrip("/").rsplit("/", 1)[-1]
    attributes = {
        "ci_status": ci_status,
        "deployment_state": status,
        "environment": optional(body, "environment", str),
        "environment_slug": optional(body, "environment_slug", str),
        "environment_tier": optional(body, "environment_tier", str),
        "environment_url": optional(body, "environment_external_url", str),
        "deployment_id": deployment_id,
        "deployable_id": optional(body, "deployable_id", int),
        "branch": optional(body, "ref", str),
        "commit_sha": tail if _FULL_SHA.fullmatch(tail) else optional(body, "short_sha", str),
        "short_sha": optional(body, "short_sha", str),
        "commit_title": optional(body, "commit_title", str),
        "url": optional(body, "deployable_url", str),
    }
    ids = ("deployment", deployment_id, status)
    return "deployment", ts_ms, field, ci_severity(ci_status), ids, attributes


def _merge_request(body: dict[str, Any]) -> Parsed:
    mr = require(body, "object_attributes", dict)
    mr_id = require(mr, "id", int)
    iid = optional(mr, "iid", int)
    action = optional(mr, "action", str)
    state = optional(mr, "state", str)
    ts_ms, field = first_time(_times(mr, "object_attributes.", "updated_at", "created_at"))
    labels = optional(body, "labels", list) or optional(mr, "labels", list, [])
    titles = [label["title"] for label in labels if isinstance(label, dict) and "title" in label]
    changes = optional(body, "changes", dict, {})
    attributes = {
        "action": action,
        "state": state,
        "merge_request_id": mr_id,
        "merge_request_iid": iid,
        "pull_requests": [iid] if iid is not None else None,
        "title": optional(mr, "title", str),
        "branch": optional(mr, "source_branch", str),
        "target_branch": optional(mr, "target_branch", str),
        "commit_sha": optional(mr, "last_commit.id", str),
        "merge_commit_sha": optional(mr, "merge_commit_sha", str),
        "merge_status": optional(mr, "detailed_merge_status", str)
        or optional(mr, "merge_status", str),
        "draft": optional(mr, "draft", bool) or optional(mr, "work_in_progress", bool),
        "labels": titles or None,
        "changed_fields": sorted(changes) or None,
        "changes_count": optional(mr, "changes_count", (str, int)),
        "url": optional(mr, "url", str),
    }
    ids = ("merge_request", mr_id, action, state)
    return "merge_request", ts_ms, field, "info", ids, attributes


def _push(body: dict[str, Any]) -> Parsed:
    ref = require(body, "ref", str)
    before = optional(body, "before", str)
    after = optional(body, "after", str)
    head = optional(body, "checkout_sha", str) or after
    commits = [c for c in optional(body, "commits", list, []) if isinstance(c, dict)]
    head_commit = next((c for c in commits if c.get("id") == head), commits[-1] if commits else {})
    ts_ms, field = first_time(
        [("commits[head].timestamp", gitlab_time(head_commit.get("timestamp")))]
    )
    total = optional(body, "total_commits_count", int)
    attributes = {
        "ref": ref,
        **split_ref(ref),
        "before_sha": before,
        "commit_sha": head if head and head != _NULL_SHA else None,
        "commit_count": total if total is not None else len(commits),
        **change_counts(commits),
        "created": before == _NULL_SHA if before else None,
        "deleted": after == _NULL_SHA if after else None,
        "actor": optional(body, "user_username", str),
        "pusher": optional(body, "user_name", str),
        "url": head_commit.get("url") if isinstance(head_commit.get("url"), str) else None,
    }
    return "push", ts_ms, field, "info", ("push", ref, before, after), attributes


_PARSERS = {
    "pipeline": _pipeline,
    "build": _build,
    "deployment": _deployment,
    "merge_request": _merge_request,
    "push": _push,
    "tag_push": _push,
}
