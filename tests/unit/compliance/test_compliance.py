"""Compliance rules (tables/compliance/stage.py, app/rules/compliance.yaml): the Stratus Red Team
samples, one firing and one quiet case per rule, the condition language, pack validation,
stateful rules, posture, replays and the hand-over to the alert stage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from app.model.events import Event
from app.runtime.staged import StagedState
from tables.alerts.config import DedupConfig
from tables.alerts.stage import AlertStage
from tables.alerts.timers import TimerSchedule
from tables.compliance.conditions import ConditionError, compile_condition, resolve
from tables.compliance.evaluation import evaluate, violation_alert
from tables.compliance.posture import posture_key, posture_rows
from tables.compliance.rule_pack import RulePackError, load_rule_pack, parse_rule_pack
from tables.compliance.stage import ComplianceConfig, ComplianceStage
from tests.unit.compliance.compliance_events import (
    ACCOUNT,
    DAY,
    DIGEST_IMAGE,
    NORMALIZER,
    SEC,
    T0,
    audit,
    binding,
    config_compliance,
    console_login,
    container_patch,
    ct,
    deployment,
    fixture_events,
    sg_ingress,
    with_attributes,
)

PACK = load_rule_pack()
NIST, PCI, CIS_AWS, CIS_K8S = "nist-800-53-r5", "pci-dss-4.0", "cis-aws-1.4.0", "cis-k8s-1.8.0"


class Harness:
    """One partition of the compliance stage over dict tables, committing after every step."""

    def __init__(self, config: ComplianceConfig | None = None) -> None:
        self.stage = ComplianceStage(config, PACK)
        self.posture: dict = {}
        self.observed: dict = {}

    def feed(self, event: Event, commit: bool = True):
        posture, observed = StagedState(self.posture), StagedState(self.observed)
        result = self.stage.on_event(event, event.ts_ms, posture, observed)
        if commit:
            posture.commit()
            observed.commit()
        return result

    def run(self, events: list[Event]) -> list[str]:
        fired: list[str] = []
        for event in events:
            fired += [v.rule_id for v in self.feed(event).violations]
        return fired


# ---- the pack --------------------------------------------------------------------------


def test_pack_has_enough_rules_across_all_families_and_frameworks():
    assert len(PACK.rules) >= 25
    families = {rule.id.split("-", 1)[0] for rule in PACK.rules}
    assert families == {"k8s", "aws", "cicd"}
    used = {fw for rule in PACK.rules for fw in rule.controls}
    assert used == {NIST, PCI, CIS_AWS, CIS_K8S}
    for rule in PACK.rules:
        assert NIST in rule.controls, rule.id  # every rule names at least its NIST control


# ---- Stratus Red Team detonations --------------------------------------------------------

#: fixture -> rule -> controls that must be mapped (a subset of the rule's mapping).
STRATUS: dict[str, dict[str, dict[str, set[str]]]] = {
    "stratus-aws.defense-evasion.cloudtrail-stop.json": {
        "aws-cloudtrail-stopped": {
            NIST: {"AU-9", "AU-12"},
            PCI: {"10.2.1", "10.2.1.6"},
            CIS_AWS: {"3.1", "4.5"},
        }
    },
    "stratus-aws.defense-evasion.cloudtrail-delete.json": {
        "aws-cloudtrail-deleted": {
            NIST: {"AU-9", "AU-12"},
            PCI: {"10.2.1", "10.2.1.6"},
            CIS_AWS: {"3.1", "4.5"},
        }
    },
    "stratus-aws.defense-evasion.cloudtrail-event-selectors.json": {
        "aws-cloudtrail-event-selectors-narrowed": {
            NIST: {"AU-2", "AU-12"},
            PCI: {"10.2.1"},
            CIS_AWS: {"3.1"},
        }
    },
    "stratus-aws.defense-evasion.organizations-leave.json": {
        "aws-organizations-leave": {NIST: {"AU-9"}, CIS_AWS: {"4.15"}}
    },
    "stratus-aws.exfiltration.ec2-security-group-open-port-22-ingress.json": {
        "aws-sg-ssh-open-to-world": {
            NIST: {"SC-7"},
            PCI: {"1.3.1", "1.4.2"},
            CIS_AWS: {"5.2", "4.10"},
        }
    },
    "stratus-aws.exfiltration.ec2-share-ebs-snapshot.json": {
        "aws-ebs-snapshot-shared": {NIST: {"AC-3", "AC-21"}, PCI: {"7.2.1"}}
    },
    "stratus-aws.initial-access.console-login-without-mfa.json": {
        "aws-console-login-without-mfa": {
            NIST: {"IA-2(1)", "IA-2(2)"},
            PCI: {"8.4.2"},
            CIS_AWS: {"1.10", "4.2"},
        }
    },
    "stratus-aws.persistence.iam-create-admin-user.json": {
        "aws-iam-admin-policy-attached": {
            NIST: {"AC-2", "AC-6"},
            PCI: {"7.2.2", "10.2.1.5"},
            CIS_AWS: {"1.16", "4.4"},
        },
        "aws-iam-user-created": {NIST: {"AC-2"}, PCI: {"10.2.1.5"}},
        "aws-iam-access-key-created": {NIST: {"IA-5"}},
        "aws-iam-policy-attached-to-user": {CIS_AWS: {"1.15"}},
    },
    "stratus-aws.persistence.iam-create-user-login-profile.json": {
        "aws-iam-login-profile-changed": {NIST: {"AC-2", "IA-5"}, PCI: {"10.2.1.5"}}
    },
    "stratus-aws.credential-access.secretsmanager-batch-retrieve-secrets.json": {
        "aws-secrets-bulk-retrieval": {NIST: {"AC-6", "SI-4"}}
    },
    "stratus-aws.execution.ec2-launch-unusual-instances.json": {
        "aws-ec2-unusual-instance-type": {NIST: {"CM-7", "SI-4"}}
    },
}


def test_every_stratus_sample_has_an_expectation(fixtures_dir: Path):
    samples = {p.name for p in (fixtures_dir / "cloudtrail").glob("stratus-*.json")}
    assert samples == set(STRATUS)


@pytest.mark.parametrize("name", sorted(STRATUS))
def test_stratus_sample_raises_its_violation_with_controls(fixtures_dir: Path, name: str):
    events = fixture_events(fixtures_dir / "cloudtrail" / name, "cloudtrail")
    harness = Harness()
    violations = [v for e in events for v in harness.feed(e).violations]
    fired = {v.rule_id: v for v in violations}
    for rule_id, controls in STRATUS[name].items():
        assert rule_id in fired, f"{name}: {rule_id} did not fire (fired: {sorted(fired)})"
        violation = fired[rule_id]
        for fw, ids in controls.items():
            assert ids <= set(violation.controls[fw]), (rule_id, fw)
        assert violation.scope.startswith("aws:")
    # Nothing unexpected: every rule that fired is listed for this detonation.
    assert set(fired) == set(STRATUS[name])


def test_benign_start_instances_raises_nothing(fixtures_dir: Path):
    path = fixtures_dir / "cloudtrail" / "falco-alice_start_instances.records.json"
    events = fixture_events(path, "cloudtrail")
    assert events
    harness = Harness()
    for event in events:
        assert evaluate(event) == []
        result = harness.feed(event)
        assert result.violations == [] and result.alerts == [] and result.outputs == []
    assert harness.posture == {}


def test_real_k8s_audit_fixtures_raise_expected_rules(fixtures_dir: Path):
    harness = Harness()
    fired: set[str] = set()
    for name in ("falco-k8s-audit-trace-events.jsonl", "audit2rbac-demo.jsonl"):
        for line in (fixtures_dir / "k8s-audit" / name).read_bytes().splitlines():
            if not line.strip():
                continue
            for event in NORMALIZER.normalize(line, family="k8s-audit"):
                fired |= {v.rule_id for v in harness.feed(event).violations}
    # The Falco trace holds privileged, hostNetwork, sensitive hostPath pods, a cluster-admin
    # binding, exec/attach, an anonymous namespace create and `mysql:latest` images.
    assert {
        "k8s-privileged-container",
        "k8s-host-network",
        "k8s-sensitive-host-path",
        "k8s-cluster-admin-binding",
        "k8s-pod-exec",
        "k8s-anonymous-request-allowed",
        "k8s-image-latest-tag",
        "k8s-rbac-changed-by-user",
    } <= fired


# ---- one firing and one quiet case per rule ----------------------------------------------


def _dep(**spec) -> Event:
    return audit("create", "deployments", "api", obj=deployment(**spec))


def _ci_job(fixtures_dir: Path, **changes) -> Event:
    (event,) = fixture_events(fixtures_dir / "github" / "workflow_job.completed.failure.json", None)
    return with_attributes(event, **changes)


def _deploy(fixtures_dir: Path) -> Event:
    path = fixtures_dir / "github" / "deployment_status.created.success.json"
    (event,) = fixture_events(path, None)
    return event


def _secret_reads(users: list[tuple[str, int]]) -> list[Event]:
    return [audit("get", "secrets", "db-password", user=u, at=T0 + t) for u, t in users]


def _aws_secret_reads(roles: list[tuple[str, int]]) -> list[Event]:
    return [
        ct(
            "GetSecretValue",
            {"secretId": "prod/db"},
            source="secretsmanager.amazonaws.com",
            role=role,
            at=T0 + t,
        )
        for role, t in roles
    ]


PUBLIC_GRANT = {
    "bucketName": "example-bucket",
    "AccessControlPolicy": {
        "AccessControlList": {
            "Grant": [
                {
                    "Grantee": {
                        "xsi:type": "Group",
                        "URI": "http://acs.amazonaws.com/groups/global/AllUsers",
                    },
                    "Permission": "READ",
                }
            ]
        }
    },
}
PRIVATE_GRANT = {
    "bucketName": "example-bucket",
    "AccessControlPolicy": {
        "AccessControlList": {
            "Grant": [{"Grantee": {"xsi:type": "CanonicalUser", "ID": "abc"}, "Permission": "FULL"}]
        }
    },
}


def _bucket_policy(principal) -> dict:
    return {
        "bucketName": "example-bucket",
        "bucketPolicy": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": principal,
                    "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::example-bucket/*",
                }
            ],
        },
    }


S3 = "s3.amazonaws.com"
IAM = "iam.amazonaws.com"
TRAIL = "cloudtrail.amazonaws.com"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
READONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
Case = Callable[[Path], list[Event]]

#: rule -> (events that must raise it, events that must not).
CASES: dict[str, tuple[Case, Case]] = {
    "k8s-privileged-container": (lambda f: [_dep(privileged=True)], lambda f: [_dep()]),
    "k8s-host-pid": (lambda f: [_dep(host_pid=True)], lambda f: [_dep()]),
    "k8s-host-ipc": (lambda f: [_dep(host_ipc=True)], lambda f: [_dep()]),
    "k8s-host-network": (lambda f: [_dep(host_network=True)], lambda f: [_dep()]),
    "k8s-host-path": (lambda f: [_dep(host_path="/data")], lambda f: [_dep()]),
    "k8s-sensitive-host-path": (
        lambda f: [_dep(host_path="/var/run/docker.sock")],
        lambda f: [_dep(host_path="/data")],
    ),
    "k8s-privilege-escalation": (lambda f: [_dep(escalation=True)], lambda f: [_dep()]),
    "k8s-run-as-root": (
        lambda f: [_dep(run_as_user=None, run_as_non_root=False)],
        lambda f: [_dep(), audit("patch", "deployments", "api", obj=container_patch())],
    ),
    "k8s-capabilities-added": (lambda f: [_dep(caps=["NET_ADMIN"])], lambda f: [_dep()]),
    "k8s-image-latest-tag": (
        lambda f: [_dep(image="nginx:latest"), _dep(image="nginx")],
        lambda f: [_dep(image="nginx:1.25.4"), _dep()],
    ),
    "k8s-missing-resource-limits": (lambda f: [_dep(limits=False)], lambda f: [_dep()]),
    "k8s-cluster-admin-binding": (
        lambda f: [audit("create", "clusterrolebindings", "ops", obj=binding("cluster-admin"))],
        lambda f: [audit("create", "clusterrolebindings", "ops", obj=binding("view"))],
    ),
    "k8s-rbac-changed-by-user": (
        lambda f: [audit("create", "clusterroles", "reader", namespace=None, obj={})],
        lambda f: [
            audit(
                "update",
                "clusterroles",
                "admin",
                namespace=None,
                obj={},
                user="system:serviceaccount:kube-system:clusterrole-aggregation-controller",
            )
        ],
    ),
    "k8s-secret-read-unusual-identity": (
        lambda f: _secret_reads([("web", 0), ("mallory", 8 * DAY)]),
        lambda f: _secret_reads([("web", 0), ("batch", 1 * DAY), ("web", 8 * DAY)]),
    ),
    "k8s-pod-exec": (
        lambda f: [audit("create", "pods", "api-7d9f", subresource="exec", code=101)],
        lambda f: [audit("get", "pods", "api-7d9f")],
    ),
    "k8s-anonymous-request-allowed": (
        lambda f: [audit("get", "namespaces", "kube-system", user="system:anonymous")],
        lambda f: [
            audit("get", "namespaces", "kube-system", user="system:anonymous", decision="forbid")
        ],
    ),
    "k8s-network-policy-deleted": (
        lambda f: [audit("delete", "networkpolicies", "default-deny")],
        lambda f: [audit("create", "networkpolicies", "default-deny", obj={})],
    ),
    "aws-cloudtrail-stopped": (
        lambda f: [ct("StopLogging", {"name": "org-trail"}, source=TRAIL)],
        lambda f: [ct("StartLogging", {"name": "org-trail"}, source=TRAIL)],
    ),
    "aws-cloudtrail-deleted": (
        lambda f: [ct("DeleteTrail", {"name": "org-trail"}, source=TRAIL)],
        lambda f: [ct("DeleteTrail", {"name": "org-trail"}, source=TRAIL, error="AccessDenied")],
    ),
    "aws-cloudtrail-event-selectors-narrowed": (
        lambda f: [
            ct(
                "PutEventSelectors",
                {
                    "trailName": "org-trail",
                    "eventSelectors": [
                        {"includeManagementEvents": True, "readWriteType": "ReadOnly"}
                    ],
                },
                source=TRAIL,
            )
        ],
        lambda f: [
            ct(
                "PutEventSelectors",
                {
                    "trailName": "org-trail",
                    "eventSelectors": [{"includeManagementEvents": True, "readWriteType": "All"}],
                },
                source=TRAIL,
            )
        ],
    ),
    "aws-cloudtrail-config-weakened": (
        lambda f: [
            ct("UpdateTrail", {"name": "org-trail", "enableLogFileValidation": False}, source=TRAIL)
        ],
        lambda f: [
            ct("UpdateTrail", {"name": "org-trail", "enableLogFileValidation": True}, source=TRAIL)
        ],
    ),
    "aws-config-recorder-stopped": (
        lambda f: [ct("StopConfigurationRecorder", {"configurationRecorderName": "default"})],
        lambda f: [ct("StartConfigurationRecorder", {"configurationRecorderName": "default"})],
    ),
    "aws-guardduty-disabled": (
        lambda f: [ct("DeleteDetector", {"detectorId": "12abc"})],
        lambda f: [ct("UpdateDetector", {"detectorId": "12abc", "enable": True})],
    ),
    "aws-root-account-usage": (
        lambda f: [ct("DescribeInstances", {}, user_type="Root")],
        lambda f: [ct("DescribeInstances", {})],
    ),
    "aws-console-login-without-mfa": (
        lambda f: [console_login(mfa=False)],
        lambda f: [console_login(mfa=True), console_login(mfa=False, success=False)],
    ),
    "aws-iam-admin-policy-attached": (
        lambda f: [
            ct("AttachRolePolicy", {"roleName": "ci", "policyArn": ADMIN}, source=IAM),
            ct(
                "PutRolePolicy",
                {
                    "roleName": "ci",
                    "policyName": "all",
                    "policyDocument": '{"Statement":[{"Effect":"Allow","Action":"*",'
                    '"Resource":"*"}]}',
                },
                source=IAM,
            ),
        ],
        lambda f: [ct("AttachRolePolicy", {"roleName": "ci", "policyArn": READONLY}, source=IAM)],
    ),
    "aws-iam-policy-attached-to-user": (
        lambda f: [ct("AttachUserPolicy", {"userName": "bob", "policyArn": READONLY}, source=IAM)],
        lambda f: [
            ct("AttachGroupPolicy", {"groupName": "ops", "policyArn": READONLY}, source=IAM)
        ],
    ),
    "aws-iam-user-created": (
        lambda f: [ct("CreateUser", {"userName": "bob"}, source=IAM)],
        lambda f: [ct("CreateUser", {"userName": "bob"}, source=IAM, error="AccessDenied")],
    ),
    "aws-iam-access-key-created": (
        lambda f: [ct("CreateAccessKey", {"userName": "bob"}, source=IAM)],
        lambda f: [ct("ListAccessKeys", {"userName": "bob"}, source=IAM)],
    ),
    "aws-iam-login-profile-changed": (
        lambda f: [ct("UpdateLoginProfile", {"userName": "bob"}, source=IAM)],
        lambda f: [ct("DeleteLoginProfile", {"userName": "bob"}, source=IAM)],
    ),
    "aws-secrets-bulk-retrieval": (
        lambda f: [
            ct(
                "BatchGetSecretValue",
                {"secretIdList": ["a", "b"]},
                source="secretsmanager.amazonaws.com",
            )
        ],
        lambda f: [ct("ListSecrets", {}, source="secretsmanager.amazonaws.com")],
    ),
    "aws-secret-read-unusual-identity": (
        lambda f: _aws_secret_reads([("app", 0), ("app", DAY), ("intruder", 9 * DAY)]),
        lambda f: _aws_secret_reads([("app", 0), ("batch", 2 * DAY), ("batch", 9 * DAY)]),
    ),
    "aws-organizations-leave": (
        lambda f: [
            ct(
                "LeaveOrganization",
                None,
                source="organizations.amazonaws.com",
                error="AccessDenied",
            )
        ],
        lambda f: [ct("DescribeOrganization", None, source="organizations.amazonaws.com")],
    ),
    "aws-sg-ssh-open-to-world": (
        lambda f: [sg_ingress(22, "0.0.0.0/0"), sg_ingress(22, "0.0.0.0/0", flat=True)],
        lambda f: [sg_ingress(22, "10.0.0.0/8"), sg_ingress(443, "0.0.0.0/0")],
    ),
    "aws-sg-rdp-open-to-world": (
        lambda f: [sg_ingress(3389, "::/0")],
        lambda f: [sg_ingress(3389, "192.0.2.0/24"), sg_ingress(22, "0.0.0.0/0")],
    ),
    "aws-sg-ingress-open-to-world": (
        lambda f: [sg_ingress(443, "0.0.0.0/0")],
        lambda f: [sg_ingress(22, "0.0.0.0/0"), sg_ingress(443, "10.0.0.0/8")],
    ),
    "aws-s3-bucket-public-acl": (
        lambda f: [ct("PutBucketAcl", PUBLIC_GRANT, source=S3)],
        lambda f: [ct("PutBucketAcl", PRIVATE_GRANT, source=S3)],
    ),
    "aws-s3-bucket-public-policy": (
        lambda f: [ct("PutBucketPolicy", _bucket_policy("*"), source=S3)],
        lambda f: [
            ct(
                "PutBucketPolicy",
                _bucket_policy({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}),
                source=S3,
            )
        ],
    ),
    "aws-s3-public-access-block-removed": (
        lambda f: [ct("DeletePublicAccessBlock", {"bucketName": "example-bucket"}, source=S3)],
        lambda f: [
            ct(
                "PutPublicAccessBlock",
                {
                    "bucketName": "example-bucket",
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "IgnorePublicAcls": True,
                        "BlockPublicPolicy": True,
                        "RestrictPublicBuckets": True,
                    },
                },
                source=S3,
            )
        ],
    ),
    "aws-ebs-snapshot-public": (
        lambda f: [
            ct(
                "ModifySnapshotAttribute",
                {
                    "snapshotId": "snap-1",
                    "attributeType": "CREATE_VOLUME_PERMISSION",
                    "createVolumePermission": {"add": {"items": [{"group": "all"}]}},
                },
            )
        ],
        lambda f: [
            ct(
                "ModifySnapshotAttribute",
                {
                    "snapshotId": "snap-1",
                    "createVolumePermission": {"remove": {"items": [{"group": "all"}]}},
                },
            )
        ],
    ),
    "aws-ebs-snapshot-shared": (
        lambda f: [
            ct(
                "ModifySnapshotAttribute",
                {
                    "snapshotId": "snap-1",
                    "createVolumePermission": {"add": {"items": [{"userId": "444455556666"}]}},
                },
            )
        ],
        lambda f: [
            ct(
                "ModifySnapshotAttribute",
                {
                    "snapshotId": "snap-1",
                    "createVolumePermission": {"remove": {"items": [{"userId": "444455556666"}]}},
                },
            )
        ],
    ),
    "aws-ebs-default-encryption-disabled": (
        lambda f: [ct("DisableEbsEncryptionByDefault", {})],
        lambda f: [ct("EnableEbsEncryptionByDefault", {})],
    ),
    "aws-storage-unencrypted": (
        lambda f: [
            ct("CreateVolume", {"size": 8}, response={"volumeId": "vol-1", "encrypted": False}),
            ct("DeleteBucketEncryption", {"bucketName": "example-bucket"}, source=S3),
        ],
        lambda f: [
            ct("CreateVolume", {"size": 8}, response={"volumeId": "vol-1", "encrypted": True})
        ],
    ),
    "aws-kms-key-disabled": (
        lambda f: [ct("ScheduleKeyDeletion", {"keyId": "k-1"}, source="kms.amazonaws.com")],
        lambda f: [ct("EnableKey", {"keyId": "k-1"}, source="kms.amazonaws.com")],
    ),
    "aws-ec2-unusual-instance-type": (
        lambda f: [
            ct(
                "RunInstances",
                {"instanceType": "p3.16xlarge"},
                error="Client.UnauthorizedOperation",
            )
        ],
        lambda f: [ct("RunInstances", {"instanceType": "t3.micro"})],
    ),
    "aws-config-rule-noncompliant": (
        lambda f: [config_compliance("NON_COMPLIANT")],
        lambda f: [config_compliance("COMPLIANT")],
    ),
    "cicd-security-job-failed-protected-branch": (
        lambda f: [_ci_job(f)],  # the real fixture: CodeQL's job failed on main
        lambda f: [
            _ci_job(f, branch="feature/login"),
            _ci_job(f, workflow="Docs", job_name="build"),
        ],
    ),
    "cicd-deploy-without-scan": (
        lambda f: [_deploy(f)],
        lambda f: [
            with_attributes(
                _ci_job(
                    f,
                    ci_status="success",
                    job_name="trivy image scan",
                    commit_sha=_deploy(f).attributes["commit_sha"],
                ),
                at=_deploy(f).ts_ms - 600 * SEC,
            ),
            _deploy(f),
        ],
    ),
}


def test_every_rule_has_cases():
    assert set(CASES) == {rule.id for rule in PACK.rules}


@pytest.mark.parametrize("rule_id", [rule.id for rule in PACK.rules])
def test_rule_fires(fixtures_dir: Path, rule_id: str):
    fire, _ = CASES[rule_id]
    events = fire(fixtures_dir)
    fired = Harness().run(events)
    assert rule_id in fired
    # Each firing event of a stateless rule fires it (stateful ones fire once, at the end).
    if not PACK.rule(rule_id).stateful:
        assert fired.count(rule_id) == len(events)


@pytest.mark.parametrize("rule_id", [rule.id for rule in PACK.rules])
def test_rule_stays_quiet(fixtures_dir: Path, rule_id: str):
    _, quiet = CASES[rule_id]
    assert rule_id not in Harness().run(quiet(fixtures_dir))


def test_violation_alert_labels_and_controls():
    event = ct("StopLogging", {"name": "org-trail"}, source=TRAIL)
    (violation,) = evaluate(event)
    alert = violation_alert(violation, event)
    assert alert.kind == "violation" and alert.status == "firing"
    assert alert.labels["alertname"] == "aws-cloudtrail-stopped"
    assert alert.labels["entity"] == event.entity == f"aws:{ACCOUNT}/org-trail"
    assert alert.labels["source"] == "cloudtrail"
    assert alert.labels["controls"] == (
        "cis-aws-1.4.0:3.1,4.5;nist-800-53-r5:AU-5,AU-9,AU-12;pci-dss-4.0:10.2.1,10.2.1.6,10.7.2"
    )
    assert alert.severity == "high"
    # The same violation always gives the same alert (deterministic id and fingerprint).
    again = violation_alert(evaluate(event)[0], event)
    assert (again.id, again.fingerprint) == (alert.id, alert.fingerprint)


def test_violations_flow_through_the_alert_stage_and_resolve_on_pass():
    harness = Harness()
    stage = AlertStage(DedupConfig(group_wait_ms=0, resolve_timeout_ms=10 * DAY))
    alerts, groups, timers = {}, {}, TimerSchedule()
    sent = []
    stop = ct("StopLogging", {"name": "org-trail"}, source=TRAIL, at=T0)
    start = ct("StartLogging", {"name": "org-trail"}, source=TRAIL, at=T0 + 3_600 * SEC)
    for event in [stop, start]:
        result = harness.feed(event)
        for alert in result.alerts:
            a, g = StagedState(alerts), StagedState(groups)
            sent += stage.on_alert(alert, event.ts_ms, a, g, timers)
            a.commit()
            g.commit()
    a, g = StagedState(alerts), StagedState(groups)
    sent += stage.flush(a, g, timers)
    statuses = [(o.value["labels"]["alertname"], o.value["status"]) for o in sent]
    assert statuses == [
        ("aws-cloudtrail-stopped", "firing"),
        ("aws-cloudtrail-stopped", "resolved"),
    ]
    assert sent[1].value["resolved_by"] == "explicit"


# ---- posture -----------------------------------------------------------------------------


def test_posture_fails_then_passes_when_the_trail_starts_again():
    harness = Harness()
    stop = ct("StopLogging", {"name": "org-trail"}, source=TRAIL, at=T0)
    result = harness.feed(stop)
    key = posture_key(NIST, "AU-9", f"aws:{ACCOUNT}", f"aws:{ACCOUNT}/org-trail")
    assert harness.posture[key]["status"] == "fail"
    assert harness.posture[key]["failing"] == ["aws-cloudtrail-stopped"]
    changes = [o for o in result.outputs if o.topic == "posture"]
    assert {o.value["control"] for o in changes if o.value["framework"] == NIST} == {
        "AU-5",
        "AU-9",
        "AU-12",
    }
    assert [o.topic for o in result.outputs].count("violations") == 1
    start = ct("StartLogging", {"name": "org-trail"}, source=TRAIL, at=T0 + 60 * SEC)
    result = harness.feed(start)
    assert harness.posture[key]["status"] == "pass"
    assert harness.posture[key]["last_pass"] == T0 + 60 * SEC
    assert harness.posture[key]["last_violation"] == T0
    assert [a.status for a in result.alerts] == ["resolved"]
    rows = {(r["framework"], r["control"]): r for r in posture_rows(harness.posture.items())}
    assert rows[(NIST, "AU-9")]["status"] == "pass"
    assert rows[(CIS_AWS, "3.1")]["passing"] == 1


def test_posture_aggregates_per_framework_control_and_scope():
    harness = Harness()
    harness.feed(sg_ingress(22, "0.0.0.0/0"))
    harness.feed(ct("StopLogging", {"name": "org-trail"}, source=TRAIL))
    harness.feed(ct("StopLogging", {"name": "other-trail"}, source=TRAIL))
    rows = posture_rows(harness.posture.items())
    by = {(r["framework"], r["control"], r["scope"]): r for r in rows}
    au9 = by[(NIST, "AU-9", f"aws:{ACCOUNT}")]
    assert au9["status"] == "fail" and au9["failing"] == 2
    assert au9["failing_entities"] == [f"aws:{ACCOUNT}/org-trail", f"aws:{ACCOUNT}/other-trail"]
    assert by[(CIS_AWS, "5.2", f"aws:{ACCOUNT}")]["rules"] == ["aws-sg-ssh-open-to-world"]
    # Natural control order: AU-5 < AU-9 < AU-12.
    nist = [r["control"] for r in rows if r["framework"] == NIST]
    assert nist.index("AU-5") < nist.index("AU-9") < nist.index("AU-12")


def test_security_group_revoked_flips_posture_to_pass():
    harness = Harness()
    harness.feed(sg_ingress(22, "0.0.0.0/0", at=T0))
    result = harness.feed(sg_ingress(22, "0.0.0.0/0", revoke=True, at=T0 + SEC))
    assert [a.labels["alertname"] for a in result.alerts] == ["aws-sg-ssh-open-to-world"]
    assert all(r["status"] == "pass" for r in posture_rows(harness.posture.items()))


def test_a_late_violation_does_not_override_a_newer_pass():
    harness = Harness()
    harness.feed(ct("StopLogging", {"name": "t"}, source=TRAIL, at=T0))
    harness.feed(ct("StartLogging", {"name": "t"}, source=TRAIL, at=T0 + 2 * SEC))
    late = harness.feed(ct("StopLogging", {"name": "t"}, source=TRAIL, at=T0 + SEC))
    assert [v.rule_id for v in late.violations] == ["aws-cloudtrail-stopped"]  # still reported
    assert all(r["status"] == "pass" for r in posture_rows(harness.posture.items()))


def test_rules_without_pass_lapse_after_their_window():
    harness = Harness()
    harness.feed(ct("DescribeInstances", {}, user_type="Root", at=T0))
    assert posture_rows(harness.posture.items(), now_ms=T0 + DAY)[0]["status"] == "fail"
    assert posture_rows(harness.posture.items(), now_ms=T0 + 31 * DAY)[0]["status"] == "pass"


def test_pass_without_earlier_failure_writes_nothing_unless_asked():
    start = ct("StartLogging", {"name": "t"}, source=TRAIL)
    quiet = Harness()
    assert quiet.feed(start).outputs == [] and quiet.posture == {}
    full = Harness(ComplianceConfig(record_passes=True))
    full.feed(start)
    assert full.posture and all(row["status"] == "pass" for row in full.posture.values())


def test_subject_separates_posture_per_user():
    harness = Harness()
    harness.feed(console_login(mfa=False, user="alice", at=T0))
    harness.feed(console_login(mfa=True, user="bob", at=T0 + SEC))
    failing = {r["entity"] for r in harness.posture.values() if r["status"] == "fail"}
    assert failing == {f"aws:{ACCOUNT}/signin#arn:aws:iam::{ACCOUNT}:user/alice"}


# ---- replays -----------------------------------------------------------------------------


def test_replay_after_a_crash_before_commit_repeats_the_same_outputs():
    harness = Harness()
    reads = _secret_reads([("web", 0), ("mallory", 8 * DAY)])
    harness.feed(reads[0])
    lost = harness.feed(reads[1], commit=False)  # crash: state not committed
    again = harness.feed(reads[1])
    assert [o.value["id"] for o in again.outputs] == [o.value["id"] for o in lost.outputs]
    assert [v.rule_id for v in again.violations] == ["k8s-secret-read-unusual-identity"]


def test_first_seen_identity_fires_once():
    harness = Harness()
    reads = _secret_reads([("web", 0), ("mallory", 8 * DAY), ("mallory", 9 * DAY)])
    assert harness.run(reads) == ["k8s-secret-read-unusual-identity"]


def test_first_seen_memory_is_bounded():
    rule = PACK.rule("k8s-secret-read-unusual-identity")
    assert rule.first_seen is not None
    harness = Harness()
    users = [(f"user{i}", i * SEC) for i in range(rule.first_seen.max_identities + 10)]
    harness.run(_secret_reads(users))
    (state,) = [v for k, v in harness.observed.items() if "|~seen|" in k]
    assert len(state["ids"]) == rule.first_seen.max_identities


def test_impersonated_identity_is_the_one_remembered():
    harness = Harness()
    harness.feed(audit("get", "secrets", "s", user="web", at=T0))
    result = harness.feed(
        audit("get", "secrets", "s", user="system:admin", impersonate="bob", at=T0 + 8 * DAY)
    )
    (violation,) = result.violations
    assert violation.identity == "bob"
    assert result.alerts[0].labels["identity"] == "bob"


# ---- the condition language --------------------------------------------------------------


def test_condition_operators():
    doc = {
        "a": {"b": [1, 2, 3], "s": "hello world", "n": None, "t": True},
        "items": [{"port": 22, "cidr": "0.0.0.0/0"}, {"port": 443, "cidr": "10.0.0.0/8"}],
    }

    def check(spec):
        return compile_condition(spec)(doc)

    assert check({"path": "a.s", "eq": "hello world"})
    assert check({"path": "a.s", "ne": "bye"})
    assert not check({"path": "a.missing", "ne": "bye"})  # missing is not "different"
    assert check({"path": "a.b", "contains": 2})
    assert check({"path": "a.s", "contains": "lo w"})
    assert check({"path": "a.b.*", "in": [3, 4]})
    assert check({"path": "a.s", "regex": "^hel+o"})
    assert check({"path": "a", "regex": '"t":true'})  # objects match as compact JSON
    assert check({"path": "a.b.*", "gt": 2}) and check({"path": "a.b.*", "lt": 2})
    assert not check({"path": "a.t", "gt": 0})  # booleans are not numbers
    assert check({"path": "a.n", "exists": False}) and check({"path": "a.b.0", "exists": True})
    assert not check({"path": "a.t", "eq": 1})
    # any_item keeps one item's fields together; a plain wildcard does not.
    world_22 = {"all": [{"path": "port", "eq": 22}, {"path": "cidr", "regex": "/0$"}]}
    assert check({"path": "items", "any_item": world_22})
    swapped = {"all": [{"path": "port", "eq": 443}, {"path": "cidr", "regex": "/0$"}]}
    assert not check({"path": "items", "any_item": swapped})
    assert check(
        {"all": [{"path": "items.*.port", "eq": 443}, {"path": "items.*.cidr", "regex": "/0$"}]}
    )
    assert check({"not": {"any": [{"path": "a.s", "eq": "x"}, {"path": "a.t", "eq": False}]}})
    assert resolve(doc, "items.*.port") == [22, 443]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"path": "a", "equals": 1}, "unknown operator 'equals'"),
        ({"eq": 1}, "missing field 'path'"),
        ({"path": "a", "eq": 1, "ne": 2}, "exactly one operator"),
        ({"path": "a", "regex": "("}, "invalid regex"),
        ({"path": "a", "in": "x"}, "'in' takes a non-empty list"),
        ({"path": "a", "gt": "3"}, "'gt' takes a number"),
        ({"all": []}, "'all' needs a non-empty list"),
        ({"all": [{"path": "a", "eq": 1}], "any": []}, "must stand alone"),
        ({"path": "a..b", "eq": 1}, "dotted path"),
        ({"all": [{"path": "a", "eq": 1}, {"path": "b", "matches": 1}]}, "all[1]"),
    ],
)
def test_condition_errors_are_clear(spec, message):
    with pytest.raises(ConditionError, match=message.replace("(", r"\(").replace("[", r"\[")):
        compile_condition(spec, "match")


# ---- pack validation ---------------------------------------------------------------------


def _pack(**rule) -> dict:
    base = {
        "id": "x-rule",
        "title": "t",
        "severity": "low",
        "types": ["cloud_api_call"],
        "match": {"path": "attributes.event_name", "eq": "X"},
        "controls": {NIST: ["AC-2"]},
    }
    base.update(rule)
    return {"version": 1, "rules": [{k: v for k, v in base.items() if v is not None}]}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"match": {"path": "a", "like": "b"}},
            "rule 'x-rule' (#1): match: unknown operator 'like'",
        ),
        ({"title": None}, "rule 'x-rule' (#1): missing field 'title'"),
        ({"controls": None}, "missing field 'controls'"),
        ({"severity": "urgent"}, "'severity' must be one of"),
        ({"controls": {"iso-27001": ["A.5"]}}, "unknown framework 'iso-27001'"),
        ({"controls": {PCI: [10.2]}}, 'quote numeric ids: "10.2.1"'),
        ({"approximate": [PCI]}, "'approximate' names 'pci-dss-4.0'"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"first_seen": {"learning_days": 7}}, "first_seen: missing field 'identity'"),
        ({"requires_prior": {"types": ["ci_job"], "key": "k"}}, "missing field 'match'"),
        ({"pass": {"path": "a", "eq": 1, "in": [1]}}, "pass: a leaf needs exactly one operator"),
    ],
)
def test_pack_errors_name_the_rule_and_field(rule, message):
    with pytest.raises(RulePackError) as info:
        parse_rule_pack(_pack(**rule), "pack.yaml")
    assert message in str(info.value)


def test_duplicate_rule_ids_are_rejected():
    doc = _pack()
    doc["rules"].append(dict(doc["rules"][0]))
    with pytest.raises(RulePackError, match="duplicate id"):
        parse_rule_pack(doc)


def test_pack_file_errors(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(RulePackError, match="not valid YAML"):
        load_rule_pack(bad)
    with pytest.raises(RulePackError, match="cannot read"):
        load_rule_pack(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_pack()), encoding="utf-8")
    assert [r.id for r in load_rule_pack(good).rules] == ["x-rule"]


def test_bundled_pack_is_the_default_and_loaded_once():
    assert load_rule_pack() is load_rule_pack()
    assert ComplianceStage().pack is PACK


def test_digest_pinned_patch_restating_the_container_passes_privileged():
    harness = Harness()
    harness.feed(audit("patch", "deployments", "api", obj=container_patch(privileged=True), at=T0))
    result = harness.feed(
        audit(
            "patch",
            "deployments",
            "api",
            obj=container_patch(DIGEST_IMAGE, privileged=False),
            at=T0 + SEC,
        )
    )
    assert [a.labels["alertname"] for a in result.alerts] == ["k8s-privileged-container"]
    assert result.alerts[0].status == "resolved"
