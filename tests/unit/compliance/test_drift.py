"""Drift detection (tables/compliance/drift.py): the Terraform plan fixtures, a Kubernetes baseline
-> privileged patch -> revert sequence built in the shapes of the real audit fixtures, CloudTrail
changes (Stratus Red Team samples), AWS Config changes, baselines, masking and replays."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest

from app.model.events import Event
from app.model.outputs import Output
from app.runtime.staged import StagedState
from app.sources.normalize import Normalizer
from tables.compliance.drift import DriftStage, drift_series
from tables.compliance.drift_baselines import BaselineError, load_baselines, parse_baselines
from tables.compliance.drift_config import DriftConfig
from tests.unit.compliance.compliance_events import (
    ACCOUNT,
    DIGEST_IMAGE,
    SEC,
    T0,
    audit,
    config_compliance,
    container_patch,
    ct,
    deployment,
    fixture_events,
    sg_ingress,
)

ARGOCD = "system:serviceaccount:argocd:argocd-application-controller"
API = "k8s:payments/deployments/api"
NEW_IMAGE = "registry.example.com/payments/api@sha256:" + "cd" * 32


class Harness:
    """One partition of the drift stage over dict tables, committing after every step."""

    def __init__(self, baselines=None, config: DriftConfig | None = None) -> None:
        self.stage = DriftStage(config or DriftConfig(), baselines or {})
        self.desired: dict = {}
        self.observed: dict = {}

    def feed(self, event: Event, commit: bool = True) -> list[Output]:
        desired, observed = StagedState(self.desired), StagedState(self.observed)
        outputs = self.stage.on_event(event, event.ts_ms, desired, observed)
        if commit:
            desired.commit()
            observed.commit()
        return outputs

    def run(self, events: list[Event]) -> list[Output]:
        return [out for event in events for out in self.feed(event)]


# ---- Terraform ---------------------------------------------------------------------------

#: plan fixture -> the drift records it must give: (resource, paths, desired, observed).
TF_EXPECTED = {
    "show-json-drift.json": [
        ("tf:test_instance.should_refresh", ["ami"], {"ami": "baz"}, {"ami": "refreshed"})
    ],
    "show-json-moved-drift.json": [
        (
            "tf:test_instance.should_refresh_with_move",
            ["ami"],
            {"ami": "baz"},
            {"ami": "refreshed"},
        )
    ],
}


def _tf_files(fixtures_dir: Path) -> list[str]:
    return sorted(p.name for p in (fixtures_dir / "terraform").glob("*.json"))


def test_terraform_expectations_cover_the_drift_fixtures(fixtures_dir: Path):
    with_drift = {
        name
        for name in _tf_files(fixtures_dir)
        if orjson.loads((fixtures_dir / "terraform" / name).read_bytes()).get("resource_drift")
    }
    assert with_drift == set(TF_EXPECTED)


@pytest.mark.parametrize(
    "name",
    [
        "show-json-basic-delete.json",
        "show-json-drift.json",
        "show-json-moved-drift.json",
        "show-json-multi-resource-update.json",
        "show-json-requires-replace.json",
        "terraform-json-120_basic.plan.json",
        "terraform-json-action_reason.plan.json",
        "terraform-json-has_checks.plan.json",
    ],
)
def test_terraform_plans(fixtures_dir: Path, name: str):
    events = fixture_events(fixtures_dir / "terraform" / name, "terraform")
    outputs = Harness().run(events)
    got = [
        (o.value["resource"], o.value["paths"], o.value["desired"], o.value["observed"])
        for o in outputs
    ]
    assert got == TF_EXPECTED.get(name, [])
    for out in outputs:
        assert out.topic == "drift" and out.key == out.value["resource"]
        assert out.value["status"] == "drifted"
        assert out.value["out_of_band"] is True  # found on refresh: made outside Terraform
        assert out.value["source"] == "terraform"
        assert out.value["resource_type"] == "test_instance"


def _plan(fixtures_dir: Path, name: str) -> dict:
    return orjson.loads((fixtures_dir / "terraform" / name).read_bytes())


def _envelope(plan: dict, time: str) -> Event:
    return Normalizer().normalize(orjson.dumps({"plan": plan, "time": time}), "terraform")


def test_terraform_drift_resolves_when_a_later_plan_finds_the_desired_value(fixtures_dir: Path):
    plan = _plan(fixtures_dir, "show-json-drift.json")
    harness = Harness()
    first = harness.run(_envelope(plan, "2024-08-01T12:00:00Z"))
    assert [o.value["status"] for o in first] == ["drifted"]
    # The same drift reported again by the next plan (nothing applied): nothing new.
    again = harness.run(_envelope(copy.deepcopy(plan), "2024-08-01T13:00:00Z"))
    assert again == []
    # After `terraform apply`: the next plan finds the resource as configured, no drift.
    applied = copy.deepcopy(plan)
    applied["resource_drift"] = []
    for change in applied["resource_changes"]:
        change["change"]["actions"] = ["no-op"]
        change["change"]["before"] = copy.deepcopy(change["change"]["after"])
    resolved = harness.run(_envelope(applied, "2024-08-01T14:00:00Z"))
    assert [(o.value["status"], o.value["paths"]) for o in resolved] == [("resolved", ["ami"])]
    assert resolved[0].value["observed"] == {"ami": "baz"}
    assert resolved[0].value["desired"] == {"ami": "baz"}


def test_terraform_plan_of_the_drift_itself_does_not_resolve_it(fixtures_dir: Path):
    events = fixture_events(fixtures_dir / "terraform" / "show-json-drift.json", "terraform")
    harness = Harness()
    harness.run(events)
    # Replaying the plan's tf_change (same plan id) after the drift resolves nothing.
    change = next(e for e in events if e.type == "tf_change" and "should_refresh" in e.entity)
    assert harness.feed(change) == []
    assert harness.observed[change.entity]["drifted"]


def test_terraform_sensitive_values_are_masked():
    harness = Harness()
    plan = {
        "format_version": "1.2",
        "resource_drift": [
            {
                "address": "aws_db_instance.main",
                "mode": "managed",
                "type": "aws_db_instance",
                "name": "main",
                "change": {
                    "actions": ["update"],
                    "before": {"password": "hunter2-old", "port": 5432},
                    "after": {"password": "hunter2-new", "port": 5433},
                },
            }
        ],
    }
    (out,) = harness.run(_envelope(plan, "2024-08-01T12:00:00Z"))
    assert out.value["paths"] == ["password", "port"]
    assert out.value["observed"] == {"password": "****", "port": 5433}
    assert out.value["desired"] == {"password": "****", "port": 5432}
    assert "hunter2" not in orjson.dumps(out.value).decode()


# ---- Kubernetes --------------------------------------------------------------------------

BASELINES = parse_baselines(
    [
        {
            "resource": API,
            "spec": {"replicas": 3, "image": DIGEST_IMAGE, "privileged": False},
        }
    ]
)


def _sequence() -> list[Event]:
    return [
        # The GitOps controller applies the declared deployment.
        audit("create", "deployments", "api", obj=deployment(), user=ARGOCD, at=T0),
        # Someone makes it privileged by hand (kubectl patch) ...
        audit(
            "patch",
            "deployments",
            "api",
            obj=container_patch(privileged=True),
            user="alice",
            at=T0 + 60 * SEC,
        ),
        # ... and reverts it.
        audit(
            "patch",
            "deployments",
            "api",
            obj=container_patch(privileged=False),
            user="alice",
            at=T0 + 120 * SEC,
        ),
    ]


def test_kubernetes_baseline_privileged_patch_then_revert():
    harness = Harness(BASELINES)
    create, patch, revert = _sequence()
    assert harness.feed(create) == []  # matches the baseline
    (drifted,) = harness.feed(patch)
    value = drifted.value
    assert value["status"] == "drifted"
    assert value["resource"] == API
    assert value["paths"] == ["privileged"]
    assert value["desired"] == {"privileged": False}
    assert value["observed"] == {"privileged": True}
    assert value["out_of_band"] is True
    assert value["actor"] == {
        "user": "alice",
        "role": None,
        "source_ip": "10.0.0.8",
        "user_agent": "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819",
    }
    assert value["time"] == patch.time
    assert value["source"] == "k8s-audit"
    (resolved,) = harness.feed(revert)
    assert resolved.value["status"] == "resolved"
    assert resolved.value["paths"] == ["privileged"]
    assert resolved.value["observed"] == {"privileged": False}
    assert resolved.value["id"] != value["id"]


def test_kubernetes_replay_after_a_crash_before_commit_emits_the_same_record():
    harness = Harness(BASELINES)
    events = _sequence()
    first = [harness.feed(e) for e in events]
    # A crash before the commit of the patch: the replay emits the same record (same id).
    fresh = Harness(BASELINES)
    fresh.feed(events[0])
    lost = fresh.feed(events[1], commit=False)
    again = fresh.feed(events[1])
    assert [o.value for o in again] == [o.value for o in lost] == [o.value for o in first[1]]


def test_kubernetes_desired_learned_from_the_gitops_controller():
    harness = Harness()  # no baseline: the controller's writes are the desired state
    create = audit("create", "deployments", "web", obj=deployment("web"), user=ARGOCD, at=T0)
    assert harness.feed(create) == []
    image = audit(
        "patch",
        "deployments",
        "web",
        obj=container_patch(NEW_IMAGE),
        user="alice",
        at=T0 + SEC,
    )
    (drifted,) = harness.feed(image)
    assert drifted.value["paths"] == ["image", "images"]
    assert drifted.value["desired"]["image"] == DIGEST_IMAGE
    assert drifted.value["observed"]["image"] == NEW_IMAGE
    # The controller syncs the declared state back.
    sync = audit(
        "update", "deployments", "web", obj=deployment("web"), user=ARGOCD, at=T0 + 2 * SEC
    )
    (resolved,) = harness.feed(sync)
    assert resolved.value["status"] == "resolved"
    assert resolved.value["out_of_band"] is False
    assert resolved.value["paths"] == ["image", "images"]


def test_kubernetes_in_band_change_against_a_baseline_is_drift_but_not_out_of_band():
    harness = Harness(BASELINES)
    (out,) = harness.feed(
        audit("create", "deployments", "api", obj=deployment(privileged=True), user=ARGOCD)
    )
    assert out.value["paths"] == ["privileged"] and out.value["out_of_band"] is False


def test_kubernetes_unmanaged_objects_and_controllers_are_ignored():
    harness = Harness()
    events = [
        audit("create", "deployments", "tool", obj=deployment("tool", privileged=True)),
        audit("delete", "clusterrolebindings", "x", namespace=None),
        audit(
            "create",
            "pods",
            "api-5d9",
            obj={"spec": deployment()["spec"]["template"]["spec"]},
            user="system:serviceaccount:kube-system:replicaset-controller",
        ),
        audit("get", "deployments", "api"),
    ]
    assert harness.run(events) == []


def test_kubernetes_rbac_change_out_of_band_and_delete_of_a_managed_object():
    harness = Harness()
    role = "k8s:_cluster/clusterroles/reader"
    harness.feed(audit("create", "clusterroles", "reader", namespace=None, obj={}, user=ARGOCD))
    (edited,) = harness.feed(
        audit("patch", "clusterroles", "reader", namespace=None, obj={}, at=T0 + SEC)
    )
    assert edited.value["resource"] == role
    assert edited.value["paths"] == ["content"]
    assert edited.value["observed"] == {"content": "manual"}
    (deleted,) = harness.feed(
        audit("delete", "clusterroles", "reader", namespace=None, at=T0 + 2 * SEC)
    )
    assert deleted.value["paths"] == ["content", "present"]
    assert deleted.value["observed"]["present"] is False
    (back,) = harness.feed(
        audit(
            "create", "clusterroles", "reader", namespace=None, obj={}, user=ARGOCD, at=T0 + 3 * SEC
        )
    )
    assert back.value["status"] == "resolved"


def test_an_older_event_never_overrides_a_newer_observation():
    harness = Harness(BASELINES)
    create, patch, revert = _sequence()
    harness.feed(create)
    harness.feed(revert)  # arrives first
    assert harness.feed(patch) == []  # older: the newer observation stands
    assert harness.observed[API]["drifted"] == {}


# ---- CloudTrail --------------------------------------------------------------------------

SG_RESPONSE = {
    "_return": True,
    "securityGroupRuleSet": {
        "items": [
            {
                "cidrIpv4": "0.0.0.0/0",
                "fromPort": 22,
                "groupId": "sg-0123456789abcdef0",
                "ipProtocol": "tcp",
                "isEgress": False,
                "securityGroupRuleId": "sgr-0abc",
                "toPort": 22,
            }
        ]
    },
}


def test_stratus_ssh_ingress_is_out_of_band_drift(fixtures_dir: Path):
    path = (
        fixtures_dir
        / "cloudtrail"
        / "stratus-aws.exfiltration.ec2-security-group-open-port-22-ingress.json"
    )
    (event,) = fixture_events(path, "cloudtrail")
    (out,) = Harness().feed(event)
    rule = "ingress[tcp:22-22:208.236.235.254/0]"
    assert out.value["paths"] == [rule]
    assert out.value["desired"] == {rule: False} and out.value["observed"] == {rule: True}
    assert out.value["out_of_band"] is True
    assert out.value["resource_type"] == "ec2"
    assert out.value["actor"]["user"] == event.attributes["principal"]
    assert out.value["actor"]["source_ip"] == event.attributes["source_ip"]


@pytest.mark.parametrize(
    ("name", "paths"),
    [
        ("stratus-aws.defense-evasion.cloudtrail-stop.json", ["logging"]),
        ("stratus-aws.defense-evasion.cloudtrail-delete.json", ["present"]),
        ("stratus-aws.defense-evasion.cloudtrail-event-selectors.json", ["event_selectors"]),
        (
            "stratus-aws.exfiltration.ec2-share-ebs-snapshot.json",
            ["create_volume_permission[098797384747]"],
        ),
        ("stratus-aws.persistence.iam-create-user-login-profile.json", ["login_profile"]),
        ("falco-alice_start_instances.records.json", None),
        ("stratus-aws.defense-evasion.organizations-leave.json", None),  # denied: no change
    ],
)
def test_stratus_changes_give_drift_paths(fixtures_dir: Path, name: str, paths):
    events = fixture_events(fixtures_dir / "cloudtrail" / name, "cloudtrail")
    outputs = Harness().run(events)
    if paths is None:
        assert outputs == []
    else:
        assert [o.value["paths"] for o in outputs] == [paths]


def test_security_group_rule_revoked_by_rule_id_resolves():
    harness = Harness()
    (drifted,) = harness.feed(sg_ingress(22, "0.0.0.0/0", flat=True, response=SG_RESPONSE))
    assert drifted.value["paths"] == ["ingress[tcp:22-22:0.0.0.0/0]"]
    revoke = ct(
        "RevokeSecurityGroupIngress",
        {
            "groupId": "sg-0123456789abcdef0",
            "securityGroupRuleIds": {"items": [{"securityGroupRuleId": "sgr-0abc"}]},
        },
        at=T0 + SEC,
    )
    (resolved,) = harness.feed(revoke)
    assert resolved.value["status"] == "resolved"


def test_trail_stopped_then_started_again():
    harness = Harness()
    stop = ct("StopLogging", {"name": "org-trail"}, source="cloudtrail.amazonaws.com")
    start = ct(
        "StartLogging", {"name": "org-trail"}, source="cloudtrail.amazonaws.com", at=T0 + SEC
    )
    outs = harness.run([stop, start])
    assert [(o.value["status"], o.value["paths"]) for o in outs] == [
        ("drifted", ["logging"]),
        ("resolved", ["logging"]),
    ]
    assert outs[0].value["desired"] == {"logging": True}


def test_changes_by_the_iac_pipeline_are_desired():
    terraform = (
        "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) "
        "terraform-provider-aws/5.40.0"
    )
    harness = Harness()
    assert harness.feed(sg_ingress(443, "0.0.0.0/0", agent=terraform)) == []
    # A human removes what Terraform put there: drift against the pipeline's state.
    (out,) = harness.feed(sg_ingress(443, "0.0.0.0/0", revoke=True, at=T0 + SEC))
    assert out.value["desired"] == {"ingress[tcp:443-443:0.0.0.0/0]": True}
    assert out.value["out_of_band"] is True


def test_iac_identity_must_match_when_configured():
    terraform = "Terraform/1.7.5 terraform-provider-aws/5.40.0"
    config = DriftConfig(iac_identities=("arn:aws:iam::*:role/terraform-ci",))
    by_ci = sg_ingress(443, "0.0.0.0/0", agent=terraform, role="terraform-ci", user="run-42")
    by_laptop = sg_ingress(8443, "0.0.0.0/0", agent=terraform, user="bob")
    harness = Harness(config=config)
    assert harness.feed(by_ci) == []
    (out,) = harness.feed(by_laptop)
    assert out.value["out_of_band"] is True


def test_unknown_previous_value_is_drift_until_the_pipeline_writes_it():
    harness = Harness()
    policy = {"bucketName": "b", "bucketPolicy": {"Statement": [{"Effect": "Allow"}]}}
    (out,) = harness.feed(ct("PutBucketPolicy", policy, source="s3.amazonaws.com"))
    assert out.value["paths"] == ["policy"] and out.value["desired"] == {"policy": None}
    terraform = "Terraform/1.7.5"
    (resolved,) = harness.feed(
        ct("PutBucketPolicy", policy, source="s3.amazonaws.com", agent=terraform, at=T0 + SEC)
    )
    assert resolved.value["status"] == "resolved"


# ---- AWS Config --------------------------------------------------------------------------


def test_aws_config_compliance_changes():
    harness = Harness()
    outs = harness.run(
        [
            config_compliance("NON_COMPLIANT", at=T0),
            config_compliance("NON_COMPLIANT", at=T0 + SEC),
            config_compliance("COMPLIANT", at=T0 + 2 * SEC),
        ]
    )
    path = "config_rule[s3-bucket-public-read-prohibited]"
    assert [(o.value["status"], o.value["paths"]) for o in outs] == [
        ("drifted", [path]),
        ("resolved", [path]),
    ]
    assert outs[0].value["out_of_band"] is None
    assert outs[0].value["resource"] == f"aws:{ACCOUNT}/example-bucket"


# ---- baselines, series -------------------------------------------------------------------


def test_load_baselines(tmp_path: Path):
    path = tmp_path / "baselines.yaml"
    path.write_text(
        "baselines:\n"
        '  - resource: "k8s:payments/deployments/api"\n'
        '    spec: {replicas: 3, image: "registry/x@sha256:1", privileged: false,'
        " host_paths: [/b, /a]}\n"
        '  - resource: "tf:aws_s3_bucket.logs"\n'
        "    spec: {versioning: {enabled: true}, tags: {Env: prod}}\n"
        '  - resource: "aws:111122223333/org-trail"\n'
        "    spec: {logging: true}\n",
        encoding="utf-8",
    )
    baselines = load_baselines(path)
    assert baselines["k8s:payments/deployments/api"] == {
        "replicas": 3,
        "image": "registry/x@sha256:1",
        "privileged": False,
        "host_paths": ["/a", "/b"],
        "present": True,
    }
    assert baselines["tf:aws_s3_bucket.logs"] == {
        "versioning.enabled": True,
        "tags.Env": "prod",
        "present": True,
    }
    assert baselines["aws:111122223333/org-trail"] == {"logging": True, "present": True}
    assert DriftStage(DriftConfig(baselines_path=str(path))).baselines == baselines


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([{"resource": API, "spec": {"replica": 3}}], "unknown Kubernetes field 'replica'"),
        ([{"resource": API}], "missing field 'spec'"),
        ([{"spec": {"a": 1}}], "missing field 'resource'"),
        ([{"resource": API, "spec": {}}], "'spec' must be a non-empty mapping"),
        ([{"resource": API, "spec": {"image": "x"}}] * 2, "duplicate resource"),
        ([{"resource": "api", "spec": {"a": 1}}], "'resource' is an entity"),
        ({"resource": API}, "expected a list"),
    ],
)
def test_baseline_errors(doc, message):
    with pytest.raises(BaselineError, match=message):
        parse_baselines(doc)


def test_drift_series():
    harness = Harness(BASELINES)
    create, patch, revert = _sequence()
    harness.feed(create)
    (drifted,) = harness.feed(patch)
    assert drift_series(drifted) == [
        (f"{API}|r|drift_changes", 1.0),
        (f"{API}|r|drift_out_of_band", 1.0),
    ]
    (resolved,) = harness.feed(revert)
    assert drift_series(resolved.value) == []


def test_outputs_are_json_and_deterministic(fixtures_dir: Path):
    events = fixture_events(fixtures_dir / "terraform" / "show-json-drift.json", "terraform")
    first = Harness().run(events)
    second = Harness().run(events)
    assert [orjson.dumps(o.value) for o in first] == [orjson.dumps(o.value) for o in second]


@pytest.mark.parametrize("agent", ["Terraform/1.7.5", "aws-cli/2.15"])
def test_state_is_bounded(agent: str):
    harness = Harness(config=DriftConfig(max_paths=8))
    for port in range(20):
        harness.feed(sg_ingress(1000 + port, "10.0.0.0/8", at=T0 + port, agent=agent))
    entity = f"aws:{ACCOUNT}/sg-0123456789abcdef0"
    state = harness.observed[entity]
    assert len(state["obs"]) <= 8 and len(state["drifted"]) <= 8
    assert set(state["drifted"]) <= set(state["obs"])
    assert len(harness.desired[entity]["spec"]) <= 8
