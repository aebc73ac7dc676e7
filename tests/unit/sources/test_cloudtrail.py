"""CloudTrail records normalize to one cloud_api_call each, keyed by account and target."""

from __future__ import annotations

import orjson
import pytest

from app.model.events import event_id
from app.sources.errors import ErrorCode, NormalizeError
from app.sources.files import file_records
from app.sources.normalize import Normalizer

#: file -> {eventName: severity} for every record in it (the count is the number of records).
CLOUDTRAIL_FILES = {
    "falco-alice_start_instances.records.json": [("StartInstances", "info")],
    "stratus-aws.credential-access.secretsmanager-batch-retrieve-secrets.json": [
        ("BatchGetSecretValue", "medium")
    ]
    * 5,
    "stratus-aws.defense-evasion.cloudtrail-delete.json": [("DeleteTrail", "high")],
    "stratus-aws.defense-evasion.cloudtrail-event-selectors.json": [("PutEventSelectors", "high")],
    "stratus-aws.defense-evasion.cloudtrail-stop.json": [("StopLogging", "high")],
    "stratus-aws.defense-evasion.organizations-leave.json": [
        ("AssumeRole", "info"),
        ("LeaveOrganization", "low"),  # AccessDenied
        ("AssumeRole", "info"),
    ],
    "stratus-aws.execution.ec2-launch-unusual-instances.json": [
        ("RunInstances", "low"),  # Client.UnauthorizedOperation
        ("AssumeRole", "info"),
        ("AssumeRole", "info"),
    ],
    "stratus-aws.exfiltration.ec2-security-group-open-port-22-ingress.json": [
        ("AuthorizeSecurityGroupIngress", "high")
    ],
    "stratus-aws.exfiltration.ec2-share-ebs-snapshot.json": [("ModifySnapshotAttribute", "high")],
    "stratus-aws.initial-access.console-login-without-mfa.json": [("ConsoleLogin", "medium")],
    "stratus-aws.persistence.iam-create-admin-user.json": [
        ("AttachUserPolicy", "high"),
        ("CreateAccessKey", "medium"),
        ("CreateUser", "medium"),
    ],
    "stratus-aws.persistence.iam-create-user-login-profile.json": [
        ("GetCallerIdentity", "info"),
        ("DeleteLoginProfile", "info"),  # failed, and not a sensitive call
        ("CreateLoginProfile", "medium"),
    ],
}


def _events(fixtures_dir, name):
    normalizer = Normalizer()
    events = []
    for _, raw in file_records(fixtures_dir / "cloudtrail" / name):
        events.extend(normalizer.normalize(raw, family="cloudtrail"))
    return events


def _records(fixtures_dir, name):
    ((_, raw),) = file_records(fixtures_dir / "cloudtrail" / name)
    doc = orjson.loads(raw)
    return doc["Records"] if isinstance(doc, dict) else doc


@pytest.mark.parametrize(("name", "expected"), sorted(CLOUDTRAIL_FILES.items()))
def test_every_cloudtrail_sample_normalizes(fixtures_dir, name, expected):
    events = _events(fixtures_dir, name)
    assert len(events) == len(expected)
    assert all(e.source == "cloudtrail" and e.type == "cloud_api_call" for e in events)
    assert len({e.id for e in events}) == len(events)
    assert [(e.attributes["event_name"], e.severity) for e in events] == expected


def test_start_instances_fields(fixtures_dir):
    (event,) = _events(fixtures_dir, "falco-alice_start_instances.records.json")
    assert event.entity == "aws:123456789012/i-ebeaf9e2"
    assert event.time == "2014-03-06T21:22:54.000Z"
    attrs = event.attributes
    assert attrs["event_id"] is None  # eventVersion 1.0 sample has no eventID
    assert attrs["principal"] == "Alice" and attrs["user_type"] == "IAMUser"
    assert attrs["principal_arn"] == "arn:aws:iam::123456789012:user/Alice"
    assert attrs["aws_region"] == "us-east-2" and attrs["source_ip"] == "205.251.233.176"
    assert attrs["request_parameters"] == {
        "instancesSet": {"items": [{"instanceId": "i-ebeaf9e2"}]}
    }
    assert attrs["response_elements"]["instancesSet"]["items"][0]["currentState"]["name"] == (
        "pending"
    )
    # no eventID: identity falls back to the record's content, deterministically
    again = _events(fixtures_dir, "falco-alice_start_instances.records.json")[0]
    assert event.id == again.id


def test_targets_and_ids(fixtures_dir):
    def entity(name):
        return [e.entity for e in _events(fixtures_dir, name)]

    assert entity("stratus-aws.defense-evasion.cloudtrail-stop.json") == [
        "aws:143434273843/stratus-red-team-ct-stop-trail-buykxbqejv"
    ]
    assert entity("stratus-aws.exfiltration.ec2-security-group-open-port-22-ingress.json") == [
        "aws:032092706103/sg-003dc7f1f1c686164"
    ]
    assert entity("stratus-aws.exfiltration.ec2-share-ebs-snapshot.json") == [
        "aws:756680937392/snap-041993b54a9b3af6f"
    ]
    assert entity("stratus-aws.defense-evasion.organizations-leave.json") == [
        "aws:307578594326/stratus-red-team-leave-org-role",  # AssumeRole: the role's name
        "aws:307578594326/organizations",  # no parameters: the service
        "aws:307578594326/stratus-red-team-leave-org-role",
    ]
    assert entity("stratus-aws.initial-access.console-login-without-mfa.json") == [
        "aws:562283505220/signin"
    ]
    (event,) = _events(fixtures_dir, "stratus-aws.defense-evasion.cloudtrail-delete.json")
    (record,) = _records(fixtures_dir, "stratus-aws.defense-evasion.cloudtrail-delete.json")
    assert event.id == event_id("cloudtrail", record["eventID"])
    assert event.attributes["event_id"] == record["eventID"]


def test_identity_mfa_and_errors(fixtures_dir):
    leave = _events(fixtures_dir, "stratus-aws.defense-evasion.organizations-leave.json")
    denied = leave[1].attributes
    assert denied["error_code"] == "AccessDenied"
    assert denied["user_type"] == "AssumedRole"
    assert denied["principal"] == "aws-go-sdk-1722587398902687000"  # the role session
    assert denied["session_issuer_arn"].endswith(":role/stratus-red-team-leave-org-role")
    assert denied["mfa_authenticated"] is False  # sessionContext mfaAuthenticated "false"
    assert denied["read_only"] is False and denied["management_event"] is True
    assert leave[0].attributes["resources"] == [
        "arn:aws:iam::307578594326:role/stratus-red-team-leave-org-role"
    ]
    (login,) = _events(fixtures_dir, "stratus-aws.initial-access.console-login-without-mfa.json")
    assert login.attributes["mfa_authenticated"] is False  # additionalEventData MFAUsed "No"
    assert login.attributes["risk_reasons"] == ["console_login_without_mfa"]


def test_access_keys_and_session_tokens_are_masked(fixtures_dir):
    events = _events(fixtures_dir, "stratus-aws.defense-evasion.organizations-leave.json")
    assert events[0].attributes["access_key_id"] == "AKIA****[aws-key]"
    credentials = events[0].attributes["response_elements"]["credentials"]
    assert credentials["sessionToken"] == "****"
    assert credentials["accessKeyId"] == "ASIA****[aws-key]"
    text = orjson.dumps([e.to_dict() for e in events]).decode()
    assert "ASIA36EV31F1RB3OA8IG" not in text and "IQoJb3JpZ2lu" not in text


def test_single_record_eventbridge_and_blobs(fixtures_dir):
    record = _records(fixtures_dir, "stratus-aws.defense-evasion.cloudtrail-stop.json")[0]
    (single,) = Normalizer().normalize(orjson.dumps(record), family="cloudtrail")
    envelope = {"detail-type": "AWS API Call via CloudTrail", "source": "aws.cloudtrail"}
    (bridged,) = Normalizer().normalize(
        orjson.dumps({**envelope, "detail": record}), family="cloudtrail"
    )
    assert single.id == bridged.id and single.severity == "high"
    big = {**record, "requestParameters": {"name": "t", "policy": "x" * 5000}}
    (event,) = Normalizer().normalize(orjson.dumps(big), family="cloudtrail")
    assert event.attributes["request_parameters"] == {"name": "t", "policy": "[5000 bytes dropped]"}


def test_root_usage_is_high(fixtures_dir):
    record = _records(fixtures_dir, "falco-alice_start_instances.records.json")[0]
    root = {**record, "userIdentity": {"type": "Root", "accountId": "123456789012"}}
    (event,) = Normalizer().normalize(orjson.dumps(root), family="cloudtrail")
    assert event.severity == "high"
    assert event.attributes["principal"] == "root"


_GOOD = {
    "eventTime": "2024-01-01T00:00:00Z",
    "eventSource": "ec2.amazonaws.com",
    "eventName": "DescribeInstances",
}


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ({"Records": []}, ErrorCode.EMPTY),
        ({"Records": [_GOOD, "x"]}, ErrorCode.WRONG_TYPE),
        ({"Records": [_GOOD, {"eventName": "X"}]}, ErrorCode.MISSING_FIELD),
        ({**_GOOD, "eventTime": "not a time"}, ErrorCode.INVALID_VALUE),
        ({**_GOOD, "eventTime": 1e300}, ErrorCode.INVALID_VALUE),
        ({**_GOOD, "eventName": 5}, ErrorCode.WRONG_TYPE),
        ({**_GOOD, "userIdentity": "alice"}, ErrorCode.WRONG_TYPE),
        ({**_GOOD, "recipientAccountId": 123}, ErrorCode.WRONG_TYPE),
        ({**_GOOD, "eventSource": "aws:s3"}, ErrorCode.UNKNOWN_FORMAT),  # an S3 notification
        ({"hello": "world"}, ErrorCode.UNKNOWN_FORMAT),
    ],
)
def test_bad_cloudtrail_records_fail_with_a_code(doc, code):
    with pytest.raises(NormalizeError) as info:
        Normalizer().normalize(orjson.dumps(doc), family="cloudtrail")
    assert info.value.code == code


def test_changes_of_successful_posture_calls(fixtures_dir):
    (stop,) = _events(fixtures_dir, "stratus-aws.defense-evasion.cloudtrail-stop.json")
    assert stop.attributes["changes"] == [{"path": "logging", "value": False, "prior": True}]
    (ingress,) = _events(
        fixtures_dir, "stratus-aws.exfiltration.ec2-security-group-open-port-22-ingress.json"
    )
    (opened,) = ingress.attributes["changes"]
    assert opened["path"].startswith("ingress[tcp:22-22:") and opened["value"] is True
    assert set(ingress.attributes["rule_paths"].values()) == {opened["path"]}
    # A denied call changed nothing; a call that is no posture change names none.
    for event in _events(fixtures_dir, "stratus-aws.defense-evasion.organizations-leave.json"):
        assert "changes" not in event.attributes and "rule_paths" not in event.attributes


def test_a_rule_revoked_by_id_names_the_rule():
    record = {
        "eventVersion": "1.08",
        "eventTime": "2024-05-01T10:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "RevokeSecurityGroupIngress",
        "eventID": "e1",
        "userIdentity": {"type": "IAMUser", "userName": "bob", "accountId": "111122223333"},
        "requestParameters": {
            "groupId": "sg-1",
            "securityGroupRuleIds": {"items": [{"securityGroupRuleId": "sgr-9"}]},
        },
    }
    (event,) = Normalizer().normalize(orjson.dumps(record), family="cloudtrail")
    assert event.attributes["changes"] == [{"rule_id": "sgr-9", "value": False, "prior": True}]
