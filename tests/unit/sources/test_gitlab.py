"""GitLab webhooks normalize to one event per body, with GitHub's types and attribute names."""

from __future__ import annotations

import orjson
import pytest

from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.github.adapter import GitHubAdapter
from app.sources.gitlab import GitLabAdapter, gitlab_time
from app.sources.normalize import Normalizer

#: file -> (type, ci_status or None, entity, time, severity); every file is one event.
GITLAB_FILES = {
    "deployment.json": (
        "deployment",
        "success",
        "repo:root/test-deployment-webhooks",
        "2021-04-28T19:50:00.000Z",
        "info",
    ),
    "job.json": (
        "ci_job",
        "success",
        "repo:jsmithy2/release-tools-fake",
        "2023-01-10T13:50:54.000Z",
        "info",
    ),
    "merge_request.json": (
        "merge_request",
        None,
        "repo:gitlabhq/gitlab-test",
        "2013-12-03T17:23:34.000Z",
        "info",
    ),
    "pipeline.json": (
        "ci_run",
        "success",
        "repo:gitlab-org/gitlab-test",
        "2016-08-12T15:26:29.000Z",
        "info",
    ),
    "push.json": ("push", None, "repo:mike/diaspora", "2012-01-03T21:36:29.000Z", "info"),
}


def _doc(fixtures_dir, name: str) -> dict:
    ((_, raw),) = list(file_records(fixtures_dir / "gitlab" / name))
    return orjson.loads(raw)


def _one(doc: dict):
    (event,) = Normalizer().normalize(orjson.dumps(doc), family="ci")
    return event


def test_every_fixture_file_is_pinned(fixtures_dir):
    assert {p.name for p in (fixtures_dir / "gitlab").glob("*.json")} == set(GITLAB_FILES)


@pytest.mark.parametrize(("name", "expected"), sorted(GITLAB_FILES.items()))
def test_every_gitlab_sample_normalizes(fixtures_dir, name, expected):
    kind, ci_status, entity, time, severity = expected
    events = []
    for _, raw in file_records(fixtures_dir / "gitlab" / name):
        events.extend(Normalizer().normalize(raw, family="ci"))
    assert len(events) == 1
    (event,) = events
    assert (event.source, event.type, event.entity, event.time) == ("gitlab", kind, entity, time)
    assert event.severity == severity
    assert event.attributes.get("ci_status") == ci_status
    assert event.attributes["provider"] == "gitlab"


def test_gitlab_times_are_read():
    assert gitlab_time("2016-08-12 15:23:28 UTC") == "2016-08-12 15:23:28Z"
    assert gitlab_time("2021-04-28 21:50:00 +0200") == "2021-04-28 21:50:00 +0200"


def test_pipeline_fields(fixtures_dir):
    event = _one(_doc(fixtures_dir, "pipeline.json"))
    attrs = event.attributes
    assert (attrs["run_id"], attrs["run_number"]) == (31, 123)
    assert (attrs["status"], attrs["conclusion"]) == ("success", "success")
    assert attrs["branch"] == "master"
    assert attrs["commit_sha"] == "bcbb5ec396a2c0f828686f14fac9b80b780504f2"
    assert attrs["event"] == "merge_request_event"
    assert attrs["duration_s"] == 63.0
    assert attrs["pull_requests"] == [1]
    assert attrs["actor"] == "user1"
    assert attrs["jobs_total"] == 5
    assert attrs["time_field"] == "object_attributes.finished_at"
    assert "us-west-1" not in orjson.dumps(event.to_dict()).decode()  # variables dropped


def test_failed_pipeline_severity_follows_failed_jobs(fixtures_dir):
    doc = _doc(fixtures_dir, "pipeline.json")
    doc["object_attributes"]["status"] = "failed"
    doc["builds"][2]["status"] = "failed"  # test-build
    event = _one(doc)
    assert (event.attributes["ci_status"], event.severity) == ("failure", "medium")
    assert event.attributes["failed_jobs"] == ["test-build"]
    doc["builds"][2]["name"] = "container_scanning"
    assert _one(doc).severity == "high"


def test_running_pipeline_uses_created_at(fixtures_dir):
    doc = _doc(fixtures_dir, "pipeline.json")
    doc["object_attributes"]["status"] = "running"
    event = _one(doc)
    assert event.attributes["ci_status"] == "in_progress"
    assert "conclusion" not in event.attributes
    assert event.time == "2016-08-12T15:23:28.000Z"


def test_job_fields_and_project_path_from_urls(fixtures_dir):
    attrs = _one(_doc(fixtures_dir, "job.json")).attributes
    assert attrs["repository"] == "jsmithy2/release-tools-fake"  # job hooks carry no project
    assert (attrs["job_id"], attrs["job_name"], attrs["stage"]) == (
        3580121225,
        "auto_deploy:start",
        "coordinated:tag",
    )
    assert (attrs["run_id"], attrs["run_attempt"]) == (743121198, 2)
    assert attrs["duration_s"] == 49.503592
    assert attrs["environment"] == "production"
    assert "failure_reason" not in attrs  # only kept for failed jobs


@pytest.mark.parametrize(
    ("name", "stage", "allow_failure", "severity"),
    [
        ("unit", "test", False, "medium"),
        ("sast", "test", False, "high"),
        ("lint", "security", False, "high"),
        ("sast", "test", True, "low"),
    ],
)
def test_failed_job_severity(fixtures_dir, name, stage, allow_failure, severity):
    doc = _doc(fixtures_dir, "job.json")
    doc.update(
        build_status="failed",
        build_name=name,
        build_stage=stage,
        build_allow_failure=allow_failure,
    )
    event = _one(doc)
    assert event.severity == severity
    assert event.attributes["failure_reason"] == "unknown_failure"


def test_deployment_fields(fixtures_dir):
    attrs = _one(_doc(fixtures_dir, "deployment.json")).attributes
    assert (attrs["environment"], attrs["deployment_state"]) == ("staging", "success")
    assert (attrs["deployment_id"], attrs["deployable_id"]) == (15, 796)
    assert attrs["commit_sha"] == "279484c09fbe69ededfced8c1bb6e6d24616b468"


def test_merge_request_fields(fixtures_dir):
    attrs = _one(_doc(fixtures_dir, "merge_request.json")).attributes
    assert (attrs["action"], attrs["state"]) == ("open", "opened")
    assert (attrs["merge_request_iid"], attrs["pull_requests"]) == (1, [1])
    assert (attrs["branch"], attrs["target_branch"]) == ("ms-viewport", "master")
    assert attrs["labels"] == ["API"]
    assert attrs["changed_fields"] == ["labels", "state_id", "updated_at", "updated_by_id"]


def test_push_fields(fixtures_dir):
    attrs = _one(_doc(fixtures_dir, "push.json")).attributes
    assert attrs["branch"] == "master"
    assert attrs["commit_sha"] == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    assert attrs["commit_count"] == 4
    assert (attrs["files_added"], attrs["files_modified"]) == (1, 1)
    assert attrs["actor"] == "jsmith"


def test_ids_are_deterministic_and_distinct(fixtures_dir):
    first = [_one(_doc(fixtures_dir, n)).id for n in sorted(GITLAB_FILES)]
    again = [_one(_doc(fixtures_dir, n)).id for n in sorted(GITLAB_FILES)]
    assert first == again
    assert len(set(first)) == len(first)
    doc = _doc(fixtures_dir, "pipeline.json")
    doc["object_attributes"]["status"] = "failed"
    assert _one(doc).id != first[sorted(GITLAB_FILES).index("pipeline.json")]


def test_matches_only_gitlab_bodies(fixtures_dir):
    github, gitlab = GitHubAdapter(), GitLabAdapter()
    for name in GITLAB_FILES:
        doc = _doc(fixtures_dir, name)
        assert gitlab.matches(doc) and not github.matches(doc)
    for path in (fixtures_dir / "github").glob("*.json"):
        assert not gitlab.matches(orjson.loads(path.read_bytes()))
    assert not gitlab.matches({"object_kind": ["pipeline"]})


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        (
            {"object_kind": "pipeline", "project": {"path_with_namespace": "a/b"}},
            ErrorCode.MISSING_FIELD,
        ),
        (
            {"object_kind": "pipeline", "object_attributes": {"id": 1, "status": "running"}},
            ErrorCode.MISSING_FIELD,
        ),
        (
            {
                "object_kind": "pipeline",
                "project": {"path_with_namespace": "a/b"},
                "object_attributes": {"id": "1", "status": "running"},
            },
            ErrorCode.WRONG_TYPE,
        ),
        (
            {
                "object_kind": "pipeline",
                "project": {"path_with_namespace": "a/b"},
                "object_attributes": {"id": 1, "status": "running", "created_at": "soon UTC"},
            },
            ErrorCode.INVALID_VALUE,
        ),
        (
            {
                "object_kind": "build",
                "build_id": "1",
                "build_status": "running",
                "project": {"path_with_namespace": "a/b"},
            },
            ErrorCode.WRONG_TYPE,
        ),
        (
            {
                "object_kind": "push",
                "ref": "refs/heads/x",
                "commits": [],
                "project": {"path_with_namespace": "a/b"},
            },
            ErrorCode.MISSING_FIELD,
        ),
        ({"object_kind": "issue", "project": {}}, ErrorCode.UNKNOWN_FORMAT),
    ],
)
def test_bad_gitlab_records_fail_with_a_code(doc, code):
    with pytest.raises(NormalizeError) as info:
        Normalizer().normalize(orjson.dumps(doc), family="ci")
    assert info.value.code == code
