"""GitHub webhooks normalize to one event per delivery, keyed by repo, bare or enveloped."""

from __future__ import annotations

import orjson
import pytest

from app.masking import MaskingPolicy
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.github.adapter import GitHubAdapter
from app.sources.gitlab import GitLabAdapter
from app.sources.normalize import Normalizer

HELLO = "repo:Codertocat/Hello-World"
OCTO = "repo:octo-org/octo-repo"
CLEE = "repo:clee2000/random-testing"

#: file -> (type, ci_status or None, entity, time, severity); every file is one event.
GITHUB_FILES = {
    "check_run.completed.failure.json": (
        "ci_job",
        "failure",
        HELLO,
        "2019-05-15T15:21:12.000Z",
        "medium",
    ),
    "check_run.completed.success.json": (
        "ci_job",
        "success",
        HELLO,
        "2019-05-15T15:21:12.000Z",
        "info",
    ),
    "check_suite.completed.success.json": (
        "ci_run",
        "success",
        HELLO,
        "2019-05-15T15:21:14.000Z",
        "info",
    ),
    "code_scanning_alert.created.json": (
        "code_scanning_alert",
        None,
        HELLO,
        "2021-02-11T03:10:43.000Z",
        "high",
    ),
    "code_scanning_alert.fixed.json": (
        "code_scanning_alert",
        None,
        HELLO,
        "2021-02-11T03:10:43.000Z",
        "high",
    ),
    "dependabot_alert.created.json": (
        "dependabot_alert",
        None,
        "repo:wolfy1339/pika-pack",
        "2023-06-24T13:57:12.000Z",
        "medium",
    ),
    "deployment_status.created.in_progress.gh-pages.json": (
        "deployment",
        "in_progress",
        HELLO,
        "2022-01-03T01:28:40.000Z",
        "info",
    ),
    "deployment_status.created.success.json": (
        "deployment",
        "success",
        HELLO,
        "2019-05-15T15:20:55.000Z",
        "info",
    ),
    "probot-event.workflow_run.completed.failure.json": (
        "ci_run",
        "failure",
        CLEE,
        "2022-10-07T18:06:21.000Z",
        "medium",
    ),
    "push.json": ("push", None, HELLO, "2019-05-15T15:20:57.000Z", "info"),
    "secret_scanning_alert.reopened.json": (
        "secret_scanning_alert",
        None,
        HELLO,
        "2020-11-24T01:37:33.000Z",
        "high",
    ),
    "workflow_job.completed.failure.json": (
        "ci_job",
        "failure",
        HELLO,
        "2021-08-05T10:38:16.000Z",
        "high",
    ),
    "workflow_job.completed.success.json": (
        "ci_job",
        "success",
        HELLO,
        "2021-08-05T10:38:16.000Z",
        "info",
    ),
    "workflow_job.in_progress.json": (
        "ci_job",
        "in_progress",
        HELLO,
        "2021-09-13T02:21:13.000Z",
        "info",
    ),
    "workflow_job.queued.json": ("ci_job", "queued", HELLO, "2021-09-13T02:21:13.000Z", "info"),
    "workflow_run.completed.failure.json": (
        "ci_run",
        "failure",
        CLEE,
        "2022-10-07T18:06:21.000Z",
        "medium",
    ),
    "workflow_run.completed.success.json": (
        "ci_run",
        "success",
        OCTO,
        "2020-10-05T16:33:49.000Z",
        "info",
    ),
    "workflow_run.completed.success.with-pull-requests.json": (
        "ci_run",
        "success",
        OCTO,
        "2020-10-05T16:33:49.000Z",
        "info",
    ),
    "workflow_run.requested.json": ("ci_run", "queued", OCTO, "2020-10-05T16:33:24.000Z", "info"),
}


def _raw(fixtures_dir, name: str) -> bytes:
    ((_, raw),) = list(file_records(fixtures_dir / "github" / name))
    return raw


def _doc(fixtures_dir, name: str) -> dict:
    return orjson.loads(_raw(fixtures_dir, name))


def _one(doc: dict, normalizer: Normalizer | None = None):
    (event,) = (normalizer or Normalizer()).normalize(orjson.dumps(doc), family="ci")
    return event


def test_every_fixture_file_is_pinned(fixtures_dir):
    assert {p.name for p in (fixtures_dir / "github").glob("*.json")} == set(GITHUB_FILES)


@pytest.mark.parametrize(("name", "expected"), sorted(GITHUB_FILES.items()))
def test_every_github_sample_normalizes(fixtures_dir, name, expected):
    kind, ci_status, entity, time, severity = expected
    events = Normalizer().normalize(_raw(fixtures_dir, name), family="ci")
    assert len(events) == 1
    (event,) = events
    assert (event.source, event.type, event.entity, event.time) == ("github", kind, entity, time)
    assert event.severity == severity
    assert event.attributes.get("ci_status") == ci_status
    assert event.attributes["provider"] == "github"
    assert event.attributes["repository"] == entity.removeprefix("repo:")


def test_ids_differ_across_deliveries(fixtures_dir):
    ids = {Normalizer().normalize(_raw(fixtures_dir, n), family="ci")[0].id for n in GITHUB_FILES}
    # The probot envelope and its extracted body are the same delivery, and octokit's
    # workflow_run "completed" examples with and without pull requests are the same run state.
    assert len(ids) == len(GITHUB_FILES) - 2


def test_envelope_and_bare_body_give_the_same_event(fixtures_dir):
    wrapped = Normalizer().normalize(
        _raw(fixtures_dir, "probot-event.workflow_run.completed.failure.json"), family="ci"
    )[0]
    bare = Normalizer().normalize(
        _raw(fixtures_dir, "workflow_run.completed.failure.json"), family="ci"
    )[0]
    assert wrapped.id == bare.id
    assert wrapped.attributes.pop("delivery_id") == "bfe22520-466a-11ed-8dae-4cb245a6a856"
    assert "delivery_id" not in bare.attributes
    assert wrapped.to_dict() == bare.to_dict()


def test_workflow_run_fields(fixtures_dir):
    event = _one(_doc(fixtures_dir, "workflow_run.completed.failure.json"))
    attrs = event.attributes
    assert attrs["conclusion"] == "failure"
    assert attrs["workflow"] == "rebase"
    assert (attrs["run_id"], attrs["run_attempt"], attrs["run_number"]) == (3206737417, 1, 96)
    assert attrs["branch"] == "master"
    assert attrs["commit_sha"] == "d74df09c45f5b338e2f67c1c73e8662ccf97561c"
    assert attrs["actor"] == "clee2000"
    assert attrs["event"] == "push"
    assert attrs["url"] == "https://github.com/clee2000/random-testing/actions/runs/3206737417"
    assert attrs["duration_s"] == 12.0
    assert attrs["time_field"] == "workflow_run.updated_at"


def test_empty_run_name_falls_back_to_workflow_name_and_prs_are_numbers(fixtures_dir):
    name = "workflow_run.completed.success.with-pull-requests.json"
    attrs = _one(_doc(fixtures_dir, name)).attributes
    assert attrs["workflow"] == "test"
    assert attrs["pull_requests"] == [2]


def test_workflow_job_fields(fixtures_dir):
    attrs = _one(_doc(fixtures_dir, "workflow_job.completed.failure.json")).attributes
    assert (attrs["workflow"], attrs["job_name"]) == ("CodeQL", "linters")
    assert (attrs["job_id"], attrs["run_id"]) == (289782451, 2202229078)
    assert attrs["failed_steps"] == ["Run yarn run format-check"]
    assert attrs["duration_s"] == 198.0
    queued = _one(_doc(fixtures_dir, "workflow_job.queued.json")).attributes
    assert queued["time_field"] == "workflow_job.created_at"
    assert "conclusion" not in queued and "duration_s" not in queued


def test_security_job_failure_is_high_and_other_failures_medium(fixtures_dir):
    doc = _doc(fixtures_dir, "workflow_job.completed.failure.json")
    assert _one(doc).severity == "high"  # workflow "CodeQL"
    doc["workflow_job"]["workflow_name"] = "CI"
    assert _one(doc).severity == "medium"  # job "linters"
    doc["workflow_job"]["name"] = "trivy image scan"
    assert _one(doc).severity == "high"

    run = _doc(fixtures_dir, "workflow_run.completed.failure.json")
    run["workflow_run"]["name"] = "Security audit"
    assert _one(run).severity == "high"


@pytest.mark.parametrize(
    ("conclusion", "ci_status", "severity"),
    [
        ("timed_out", "failure", "medium"),
        ("startup_failure", "failure", "medium"),
        ("cancelled", "cancelled", "low"),
        ("skipped", "skipped", "info"),
        ("success", "success", "info"),
    ],
)
def test_conclusions_map_to_common_status(fixtures_dir, conclusion, ci_status, severity):
    doc = _doc(fixtures_dir, "workflow_run.completed.failure.json")
    doc["workflow_run"]["conclusion"] = conclusion
    event = _one(doc)
    assert (event.attributes["ci_status"], event.severity) == (ci_status, severity)
    assert event.attributes["conclusion"] == conclusion


def test_deployment_fields_and_failure(fixtures_dir):
    doc = _doc(fixtures_dir, "deployment_status.created.success.json")
    attrs = _one(doc).attributes
    assert attrs["environment"] == "production"
    assert (attrs["deployment_id"], attrs["deployment_state"]) == (145988746, "success")
    assert attrs["commit_sha"] == "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
    doc["deployment_status"]["state"] = "failure"
    failed = _one(doc)
    assert (failed.attributes["ci_status"], failed.severity) == ("failure", "medium")
    pages = _one(_doc(fixtures_dir, "deployment_status.created.in_progress.gh-pages.json"))
    assert pages.attributes["workflow"] == "pages build and deployment"


def test_push_of_a_deleted_tag(fixtures_dir):
    attrs = _one(_doc(fixtures_dir, "push.json")).attributes
    assert attrs["tag"] == "simple-tag"
    assert attrs["deleted"] is True
    assert "commit_sha" not in attrs  # after is the null sha
    assert attrs["commit_count"] == 0
    assert attrs["time_field"] == "repository.pushed_at"


def test_code_scanning_alert_fields_and_stable_finding_key(fixtures_dir):
    created = _one(_doc(fixtures_dir, "code_scanning_alert.created.json"))
    fixed = _one(_doc(fixtures_dir, "code_scanning_alert.fixed.json"))
    attrs = created.attributes
    assert (attrs["alert_number"], attrs["rule_id"], attrs["tool"]) == (
        10,
        "java/sql-injection",
        "CodeQL",
    )
    assert attrs["path"] == "src/main/java/com/github/demo/service/BookService.java"
    assert attrs["severity_label"] == "error"
    assert (attrs["state"], fixed.attributes["state"]) == ("open", "fixed")
    assert created.id != fixed.id
    assert attrs["finding_key"] == fixed.attributes["finding_key"]
    assert len(attrs["finding_key"]) == 64


def test_finding_key_ignores_severity_but_not_the_repo(fixtures_dir):
    doc = _doc(fixtures_dir, "code_scanning_alert.created.json")
    key = _one(doc).attributes["finding_key"]
    doc["alert"]["rule"]["security_severity_level"] = "critical"
    event = _one(doc)
    assert event.severity == "critical"
    assert event.attributes["finding_key"] == key
    doc["repository"]["full_name"] = "Codertocat/Other"
    assert _one(doc).attributes["finding_key"] != key


def test_alert_transition_time_is_used(fixtures_dir):
    doc = _doc(fixtures_dir, "code_scanning_alert.fixed.json")
    doc["alert"]["fixed_at"] = "2021-03-01T12:00:00Z"
    event = _one(doc)
    assert event.time == "2021-03-01T12:00:00.000Z"
    assert event.attributes["time_field"] == "alert.fixed_at"


def test_dependabot_alert_fields(fixtures_dir):
    doc = _doc(fixtures_dir, "dependabot_alert.created.json")
    attrs = _one(doc).attributes
    assert (attrs["ghsa_id"], attrs["cve_id"]) == ("GHSA-c2qf-rxjj-qqgw", "CVE-2022-25883")
    assert (attrs["package"], attrs["ecosystem"]) == ("semver", "npm")
    assert attrs["manifest_path"] == "package-lock.json"
    assert attrs["fixed_version"] == "7.5.2"
    assert attrs["severity_label"] == "medium"
    assert "epss" not in attrs
    doc["alert"]["security_advisory"]["epss"] = {"percentage": 0.0012, "percentile": 0.45}
    assert _one(doc).attributes["epss"] == {"percentage": 0.0012, "percentile": 0.45}


def test_secret_scanning_secret_is_never_emitted(fixtures_dir):
    doc = _doc(fixtures_dir, "secret_scanning_alert.reopened.json")
    leaked = "aio_Zx9QwErTyUiOp1234567890LeakedValue"
    doc["alert"]["secret"] = leaked
    for normalizer in (Normalizer(), Normalizer(masking=MaskingPolicy(enabled=False))):
        event = _one(doc, normalizer)
        assert leaked not in orjson.dumps(event.to_dict()).decode()
        assert event.severity == "high"
        assert event.attributes["secret_type"] == "adafruit_io_key"
        assert event.attributes["state"] == "open"


def test_matches_only_github_bodies(fixtures_dir):
    github, gitlab = GitHubAdapter(), GitLabAdapter()
    for name in GITHUB_FILES:
        doc = _doc(fixtures_dir, name)
        assert github.matches(doc) and not gitlab.matches(doc)
    for path in (fixtures_dir / "gitlab").glob("*.json"):
        assert not github.matches(orjson.loads(path.read_bytes()))
    assert not github.matches({"name": ["x"], "payload": 1})
    assert not github.matches({"alert": {"rule": {}}})  # no repository: not a webhook body


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ({"name": "workflow_run", "id": "d1", "payload": []}, ErrorCode.WRONG_TYPE),
        ({"name": "workflow_run", "id": "d1", "payload": {}}, ErrorCode.MISSING_FIELD),
        ({"name": "issues", "id": "d1", "payload": {"issue": {}}}, ErrorCode.UNKNOWN_FORMAT),
        ({"workflow_run": {"id": 1, "status": "completed"}}, ErrorCode.MISSING_FIELD),
        (
            {"workflow_run": {"id": 1, "status": 3}, "repository": {"full_name": "a/b"}},
            ErrorCode.WRONG_TYPE,
        ),
        (
            {"workflow_run": {"id": 1, "status": "queued"}, "repository": {"full_name": "a/b"}},
            ErrorCode.MISSING_FIELD,
        ),
        (
            {
                "workflow_run": {"id": 1, "status": "queued", "updated_at": "yesterday"},
                "repository": {"full_name": "a/b"},
            },
            ErrorCode.INVALID_VALUE,
        ),
        (
            {"workflow_run": {"status": "queued"}, "repository": {"full_name": "a/b"}},
            ErrorCode.MISSING_FIELD,
        ),
        ({"workflow_run": {"id": 1}, "repository": {"full_name": 5}}, ErrorCode.WRONG_TYPE),
        (
            {
                "action": "created",
                "alert": {"number": 1, "rule": {"severity": "loud"}, "created_at": 1},
                "repository": {"full_name": "a/b"},
            },
            ErrorCode.INVALID_VALUE,
        ),
        (
            {"alert": {"rule": {"id": "x"}}, "repository": {"full_name": "a/b"}},
            ErrorCode.MISSING_FIELD,
        ),
        ({"hello": "world"}, ErrorCode.UNKNOWN_FORMAT),
    ],
)
def test_bad_github_records_fail_with_a_code(doc, code):
    with pytest.raises(NormalizeError) as info:
        Normalizer().normalize(orjson.dumps(doc), family="ci")
    assert info.value.code == code


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"{not json", ErrorCode.MALFORMED_JSON), (b"   ", ErrorCode.EMPTY)],
)
def test_undecodable_records_fail_with_a_code(raw, code):
    with pytest.raises(NormalizeError) as info:
        Normalizer().normalize(raw, family="ci")
    assert info.value.code == code
