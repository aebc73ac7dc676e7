"""CI/CD webhooks: GitHub Actions workflow runs and jobs, GitLab pipelines, and production
deployments of commits a security job passed on. Main branches stay green (failed runs are on
feature branches); a deployment fails as often as the service's scenario says."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from app.generator.fleet import (
    DEVELOPERS,
    GITHUB_SERVICES,
    IMAGES,
    SERVICES,
    STACKS,
    hex_id,
    number_id,
)
from app.generator.scenarios import SCENARIOS
from app.generator.source import Source

#: (workflow, path, jobs, failure probability); {lang} is the service's CodeQL language.
WORKFLOWS = (
    ("CI", ".github/workflows/ci.yml", ("build", "unit-tests", "lint"), 0.06),
    ("CodeQL", ".github/workflows/codeql.yml", ("Analyze ({lang})",), 0.12),
    ("security", ".github/workflows/security.yml", ("trivy-scan", "gitleaks"), 0.15),
)
CODEQL_LANG = {"python": "python", "go": "go", "java": "java-kotlin", "node": "javascript"}
GITLAB_JOBS = (
    ("build", "build-image"),
    ("test", "unit-tests"),
    ("security", "trivy-scan"),
    ("security", "semgrep-sast"),
    ("deploy", "deploy-production"),
)
#: A commit is deployed this long after its security scan passed, at the earliest.
DEPLOY_AFTER_SCAN_MS = 20_000
FEATURES = ("retry-backoff", "new-checkout-flow", "bump-deps", "refactor-auth", "fix-flaky-test")
COMMIT_TITLES = (
    "Fix retry on idempotency key conflict",
    "Bump dependencies",
    "Add request timeout to upstream client",
    "Refactor config loading",
    "Log correlation id on errors",
    "Update base image to alpine 3.18.4",
)


def _github_repository(service: str) -> dict[str, Any]:
    return {
        "id": number_id("github", service),
        "node_id": "R_kgDO" + hex_id("github", service, size=4),
        "name": service,
        "full_name": f"acme/{service}",
        "private": True,
        "owner": {"login": "acme", "id": 90210731, "type": "Organization"},
        "html_url": f"https://github.com/acme/{service}",
        "default_branch": "main",
    }


def _gitlab_project(service: str) -> dict[str, Any]:
    web = f"https://gitlab.acme.example/acme/{service}"
    return {
        "id": number_id("gitlab", service, modulo=10**5),
        "name": service,
        "description": "",
        "web_url": web,
        "avatar_url": None,
        "git_ssh_url": f"git@gitlab.acme.example:acme/{service}.git",
        "git_http_url": f"{web}.git",
        "namespace": "acme",
        "visibility_level": 0,
        "path_with_namespace": f"acme/{service}",
        "default_branch": "main",
        "homepage": web,
    }


REPOSITORIES = {s: _github_repository(s) for s in GITHUB_SERVICES}
PROJECTS = {s: _gitlab_project(s) for s in SERVICES if s not in GITHUB_SERVICES}


@dataclass(eq=False)
class Ci(Source):
    """CI webhooks, with the run ids handed out and the commits that passed a security job."""

    #: the last run, job or deployment id handed out (a random start, drawn first)
    _serial: int = field(init=False)
    #: service -> (time, commit) of each security job that passed, oldest first
    _scanned_commits: dict[str, list[tuple[int, str]]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._serial = self.rnd.randrange(10**8, 9 * 10**8)

    def _next_id(self) -> int:
        self._serial += self.rnd.randint(1, 97)
        return self._serial

    def webhook(self, ts_ms: int) -> bytes:
        """A deployment (1 in 8), else a GitHub workflow run/job or a GitLab pipeline."""
        rnd = self.rnd
        service = rnd.choice(SERVICES)
        github = service in GITHUB_SERVICES
        if rnd.random() < 0.125 and (sha := self._deployable(service, ts_ms)) is not None:
            body = self._deployment(service, ts_ms, github, sha)
        elif not github:
            body = self._gitlab_pipeline(service, ts_ms)
        elif rnd.random() < 0.45:
            body = self.workflow_run(service, ts_ms)
        else:
            body = self._workflow_job(service, ts_ms)
        return orjson.dumps(body)

    def _workflow(self, service: str) -> tuple[str, str, str, bool]:
        """(workflow, path, job name, failed) of a random workflow run."""
        rnd = self.rnd
        name, path, jobs, failure = WORKFLOWS[rnd.choices((0, 1, 2), (6, 2, 2))[0]]
        job = rnd.choice(jobs).format(lang=CODEQL_LANG[STACKS[service]])
        return name, path, job, rnd.random() < failure

    def _branch(self, failed: bool) -> str:
        """Main branches stay green: failed runs are on feature branches."""
        return f"feature/{self.rnd.choice(FEATURES)}" if failed else "main"

    def workflow_run(self, service: str, ts_ms: int) -> dict[str, Any]:
        """A completed GitHub `workflow_run` webhook of one of `service`'s workflows."""
        rnd, clock = self.rnd, self.clock
        workflow, path, _job, failed = self._workflow(service)
        run_id, sha, actor = self._next_id(), self.sha(), rnd.choice(DEVELOPERS)
        if not failed and workflow != "CI":
            self._scan_passed(service, ts_ms, sha)
        started = ts_ms - rnd.randint(40, 900) * 1000
        url = f"https://github.com/acme/{service}/actions/runs/{run_id}"
        repository = REPOSITORIES[service]
        title = rnd.choice(COMMIT_TITLES)
        run = {
            "id": run_id,
            "name": workflow,
            "head_branch": self._branch(failed),
            "head_sha": sha,
            "path": path,
            "display_title": title,
            "run_number": run_id % 5000,
            "event": "push",
            "status": "completed",
            "conclusion": "failure" if failed else "success",
            "workflow_id": number_id(service, workflow, modulo=10**8),
            "check_suite_id": run_id * 3,
            "html_url": url,
            "pull_requests": [],
            "created_at": clock.seconds(started),
            "updated_at": clock.seconds(ts_ms),
            "actor": {"login": actor, "type": "User"},
            "run_attempt": 1,
            "run_started_at": clock.seconds(started),
            "head_commit": {"id": sha, "message": title, "author": {"name": actor}},
            "repository": {"id": repository["id"], "full_name": repository["full_name"]},
        }
        return {
            "action": "completed",
            "workflow_run": run,
            "workflow": {"id": run["workflow_id"], "name": workflow, "path": path},
            "repository": repository,
            "organization": {"login": "acme", "id": 90210731},
            "sender": {"login": actor, "type": "User"},
        }

    def _workflow_job(self, service: str, ts_ms: int) -> dict[str, Any]:
        rnd, clock = self.rnd, self.clock
        workflow, _path, job, failed = self._workflow(service)
        job_id, run_id, sha = self._next_id(), self._next_id(), self.sha()
        if not failed and workflow != "CI":
            self._scan_passed(service, ts_ms, sha)
        started = ts_ms - rnd.randint(20, 600) * 1000
        main_step = "Run " + job if job in ("trivy-scan", "gitleaks") else "Run make " + job
        if job.startswith("Analyze"):
            main_step = "Perform CodeQL Analysis"
        steps = [("Set up job", "success"), ("Run actions/checkout@v4", "success")]
        steps += [(main_step, "failure" if failed else "success")]
        steps += [("Complete job", "success")]
        return {
            "action": "completed",
            "workflow_job": {
                "id": job_id,
                "run_id": run_id,
                "run_attempt": 1,
                "head_sha": sha,
                "head_branch": self._branch(failed),
                "html_url": f"https://github.com/acme/{service}/actions/runs/{run_id}/job/{job_id}",
                "status": "completed",
                "conclusion": "failure" if failed else "success",
                "created_at": clock.seconds(started - 4000),
                "started_at": clock.seconds(started),
                "completed_at": clock.seconds(ts_ms),
                "name": job,
                "steps": [
                    {"name": name, "status": "completed", "conclusion": result, "number": i + 1}
                    for i, (name, result) in enumerate(steps)
                ],
                "labels": ["ubuntu-latest"],
                "runner_name": f"GitHub Actions {job_id % 90 + 2}",
                "runner_group_name": "GitHub Actions",
                "workflow_name": workflow,
            },
            "repository": REPOSITORIES[service],
            "organization": {"login": "acme", "id": 90210731},
            "sender": {"login": rnd.choice(DEVELOPERS), "type": "User"},
        }

    def _scan_passed(self, service: str, ts_ms: int, sha: str) -> None:
        """A security job passed on `sha` at `ts_ms`."""
        self._scanned_commits.setdefault(service, []).append((ts_ms, sha))

    def _deployable(self, service: str, ts_ms: int) -> str | None:
        """The newest commit whose security scan passed at least `DEPLOY_AFTER_SCAN_MS` ago
        (older ones are forgotten)."""
        scans = self._scanned_commits.get(service, [])
        cutoff = ts_ms - DEPLOY_AFTER_SCAN_MS
        while len(scans) > 1 and scans[1][0] <= cutoff:
            scans.pop(0)
        return scans[0][1] if scans and scans[0][0] <= cutoff else None

    def _deployment(self, service: str, ts_ms: int, github: bool, sha: str) -> dict[str, Any]:
        """A production deployment of `sha` (a commit a security scan passed)."""
        rnd, clock = self.rnd, self.clock
        ok = rnd.random() >= SCENARIOS[service].deploy_failure
        if ok:
            self.releases.deploy(service)
        deployment_id, actor = self._next_id(), rnd.choice(DEVELOPERS)
        if github:
            return {
                "action": "created",
                "deployment_status": {
                    "id": self._next_id(),
                    "state": "success" if ok else "failure",
                    "creator": {"login": "github-actions[bot]", "type": "Bot"},
                    "description": f"{IMAGES[service]}:{self.releases.version(service)}",
                    "environment": "production",
                    "target_url": f"https://github.com/acme/{service}/deployments",
                    "created_at": clock.seconds(ts_ms),
                    "updated_at": clock.seconds(ts_ms),
                },
                "deployment": {
                    "id": deployment_id,
                    "sha": sha,
                    "ref": "main",
                    "task": "deploy",
                    "payload": {},
                    "environment": "production",
                    "production_environment": True,
                    "creator": {"login": actor, "type": "User"},
                    "created_at": clock.seconds(ts_ms - 95_000),
                    "updated_at": clock.seconds(ts_ms),
                },
                "repository": REPOSITORIES[service],
                "sender": {"login": actor, "type": "User"},
            }
        project = PROJECTS[service]
        return {
            "object_kind": "deployment",
            "status": "success" if ok else "failed",
            "status_changed_at": clock.gitlab(ts_ms).replace(" UTC", " +0000"),
            "deployment_id": deployment_id,
            "deployable_id": deployment_id + 1,
            "deployable_url": f"{project['web_url']}/-/jobs/{deployment_id + 1}",
            "environment": "production",
            "environment_slug": "production",
            "environment_external_url": f"https://{service}.acme.example",
            "project": project,
            "short_sha": sha[:8],
            "user": {"id": 42, "name": actor.title(), "username": actor},
            "commit_url": f"{project['web_url']}/-/commit/{sha}",
            "commit_title": rnd.choice(COMMIT_TITLES),
            "ref": "main",
        }

    def _gitlab_pipeline(self, service: str, ts_ms: int) -> dict[str, Any]:
        rnd, clock = self.rnd, self.clock
        pipeline_id, sha, actor = self._next_id(), self.sha(), rnd.choice(DEVELOPERS)
        duration = rnd.randint(120, 900)
        created = ts_ms - (duration + 20) * 1000
        failing = rnd.choices((None, 1, 2, 3), (88, 4, 4, 4))[0]
        builds = []
        for index, (stage, name) in enumerate(GITLAB_JOBS):
            status = "success"
            if failing is not None:
                status = "failed" if index == failing else "skipped" if index > failing else status
            builds.append(
                {
                    "id": pipeline_id * 10 + index,
                    "stage": stage,
                    "name": name,
                    "status": status,
                    "created_at": clock.gitlab(created),
                    "allow_failure": False,
                    "runner": {"id": 7, "description": "k8s-runner", "tags": ["k8s"]},
                }
            )
        if failing is None:
            self._scan_passed(service, ts_ms, sha)  # its security stage passed
        project = PROJECTS[service]
        return {
            "object_kind": "pipeline",
            "object_attributes": {
                "id": pipeline_id,
                "iid": pipeline_id % 3000,
                "name": "build, test and security scan",  # `workflow:name`
                "ref": self._branch(failing is not None),
                "tag": False,
                "sha": sha,
                "source": "push",
                "status": "failed" if failing is not None else "success",
                "detailed_status": "failed" if failing is not None else "passed",
                "stages": ["build", "test", "security", "deploy"],
                "created_at": clock.gitlab(created),
                "finished_at": clock.gitlab(ts_ms),
                "duration": duration,
                "queued_duration": 20,
                "url": f"{project['web_url']}/-/pipelines/{pipeline_id}",
            },
            "user": {"id": 42, "name": actor.title(), "username": actor},
            "project": project,
            "commit": {"id": sha, "message": rnd.choice(COMMIT_TITLES), "author": {"name": actor}},
            "builds": builds[::-1],  # GitLab lists the latest job first
        }
