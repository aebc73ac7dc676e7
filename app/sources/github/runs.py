"""GitHub Actions and checks: workflow runs and check suites (`ci_run`), workflow jobs and
check runs (`ci_job`), with GitHub's statuses mapped to the common `ci_status`."""

from __future__ import annotations

from typing import Any

from app.sources.base import optional, require
from app.sources.ci_common import ci_severity, duration_s, first_time
from app.sources.github.parsed import Parsed, field_times

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


def github_ci_status(status: str, conclusion: str | None) -> str:
    """A GitHub status/conclusion pair as the common `ci_status`."""
    if conclusion:
        return CONCLUSION_STATUS.get(conclusion, conclusion)
    return PROGRESS_STATUS.get(status, status)


def _pr_numbers(obj: dict[str, Any]) -> list[int] | None:
    prs = optional(obj, "pull_requests", list, [])
    numbers = [pr["number"] for pr in prs if isinstance(pr, dict) and type(pr.get("number")) is int]
    return numbers or None


def workflow_run(body: dict[str, Any], repo: str, action: str | None) -> Parsed:
    run = require(body, "workflow_run", dict)
    run_id = require(run, "id", int)
    status = require(run, "status", str)
    conclusion = optional(run, "conclusion", str)
    ci_status = github_ci_status(status, conclusion)
    workflow = optional(run, "name", str) or optional(body, "workflow.name", str)
    ts_ms, field = first_time(
        field_times(run, "workflow_run", "updated_at", "run_started_at", "created_at")
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
    return Parsed("ci_run", ts_ms, field, ci_severity(ci_status, workflow), ids, attributes)


def check_suite(body: dict[str, Any], repo: str, action: str | None) -> Parsed:
    suite = require(body, "check_suite", dict)
    suite_id = require(suite, "id", int)
    status = require(suite, "status", str)
    conclusion = optional(suite, "conclusion", str)
    ci_status = github_ci_status(status, conclusion)
    app = optional(suite, "app.name", str)
    ts_ms, field = first_time(field_times(suite, "check_suite", "updated_at", "created_at"))
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
    return Parsed("ci_run", ts_ms, field, ci_severity(ci_status, app), ids, attributes)


def _job_times(job: dict[str, Any], prefix: str, status: str) -> list[tuple[str, Any]]:
    if status == "completed":
        order = ("completed_at", "started_at", "created_at")
    elif status == "in_progress":
        order = ("started_at", "created_at")
    else:
        order = ("created_at", "started_at")
    return field_times(job, prefix, *order)


def workflow_job(body: dict[str, Any], repo: str, action: str | None) -> Parsed:
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
    return Parsed("ci_job", ts_ms, field, severity, ids, attributes)


def check_run(body: dict[str, Any], repo: str, action: str | None) -> Parsed:
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
    return Parsed(
        "ci_job", ts_ms, field, severity, ("check_run", check_id, status, conclusion), attributes
    )
