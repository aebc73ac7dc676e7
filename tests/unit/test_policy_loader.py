"""Loading policy sets (app/policy/loader.py): metadata, Gatekeeper objects, input shapes and
every check that keeps a policy from silently yielding nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.policy.gatekeeper import parse_constraint
from app.policy.inputs import admission_review, terraform_input
from app.policy.loader import PolicyError, bundled_policy_dir, load_policies
from app.policy.metadata import MetadataError, read_metadata
from tests.unit.compliance.compliance_events import audit, deployment

POLICIES = Path(__file__).resolve().parents[1] / "policies"
S3 = """# METADATA
# title: Public bucket
# custom:
#   id: my-public-bucket
#   input: terraform
#   severity: high
#   controls:
#     nist-800-53-r5: [AC-3]
package acme.s3

deny contains msg if {
\tsome rc in input.resource_changes
\trc.change.after.acl == "public-read"
\tmsg := sprintf("%s is public", [rc.address])
}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_bundled_set_loads_with_its_tests_passing():
    policies = load_policies([bundled_policy_dir()])
    ids = {p.id for p in policies.policies}
    assert ids == {"tf-s3-bucket-public-acl", "tf-sg-admin-port-open-to-world"}
    assert policies.tests >= 16  # the seccomp template's tests too
    for policy in policies.policies:  # every shipped policy maps to controls and has tests
        assert policy.custom.get("controls"), policy.id
        assert any(m.test_only and m.package == policy.package for m in policies.modules)


def test_metadata_of_package_and_rule_blocks():
    source = S3.replace(
        "deny contains", "# METADATA\n# custom:\n#   severity: critical\ndeny contains"
    )
    meta = read_metadata(source)
    assert meta.title == "Public bucket"
    assert meta.custom["severity"] == "critical"  # the rule's block refines the package's
    assert meta.custom["controls"] == {"nist-800-53-r5": ["AC-3"]}


def test_metadata_errors_name_the_line():
    with pytest.raises(MetadataError, match=r"at line 1: custom\.sevrity is not supported"):
        read_metadata("# METADATA\n# custom:\n#   sevrity: high\npackage p\n")


def test_policy_from_metadata(tmp_path: Path):
    write(tmp_path, "s3.rego", S3)
    (policy,) = load_policies([tmp_path]).policies
    assert (policy.id, policy.shape, policy.severity, policy.title) == (
        "my-public-bucket",
        "terraform",
        "high",
        "Public bucket",
    )
    assert policy.types == {"tf_change"} and policy.decisions == ("deny",)


def test_v0_gatekeeper_template_is_rejected_with_file_and_cause():
    with pytest.raises(PolicyError) as error:
        load_policies([POLICIES / "gatekeeper_v0"])
    message = str(error.value)
    assert "gatekeeper_v0/template.yaml#k8spspprivilegedcontainer:3" in message
    assert "v0 Rego syntax" in message


def test_parse_error_names_the_file(tmp_path: Path):
    write(tmp_path, "broken.rego", "package main\n\ndeny contains msg if {\n")
    with pytest.raises(PolicyError, match=r"broken\.rego: does not parse: .*broken\.rego:3"):
        load_policies([tmp_path])


def test_package_without_decision_rules_is_rejected_unless_imported(tmp_path: Path):
    write(tmp_path, "helpers.rego", 'package acme.lib\n\npublic(acl) if acl == "x"\n')
    with pytest.raises(PolicyError, match="defines no deny, warn or violation rule"):
        load_policies([tmp_path])
    write(
        tmp_path,
        "s3.rego",
        S3.replace("package acme.s3\n", "package acme.s3\n\nimport data.acme.lib\n"),
    )
    assert [p.id for p in load_policies([tmp_path]).policies] == ["my-public-bucket"]


def test_decision_rule_that_is_not_a_set_is_rejected(tmp_path: Path):
    write(tmp_path, "p.rego", S3.replace("deny contains msg if", "deny := msg if"))
    with pytest.raises(PolicyError, match="must be a set of messages"):
        load_policies([tmp_path])


def test_package_other_than_main_must_declare_its_input(tmp_path: Path):
    write(tmp_path, "p.rego", "package acme.x\n\ndeny contains 1 if input.a\n")
    with pytest.raises(PolicyError, match=r"needs METADATA custom\.input"):
        load_policies([tmp_path])


def test_event_policy_must_declare_types(tmp_path: Path):
    source = (
        "# METADATA\n# custom:\n#   input: event\npackage acme.x\n\ndeny contains 1 if input.a\n"
    )
    write(tmp_path, "p.rego", source)
    with pytest.raises(PolicyError, match=r"must declare custom\.types"):
        load_policies([tmp_path])


def test_failing_test_keeps_the_set_from_loading(tmp_path: Path):
    write(tmp_path, "s3.rego", S3)
    write(
        tmp_path,
        "s3_test.rego",
        "package acme.s3\n\ntest_wrong if {\n  count(deny) == 1\n}\n",
    )
    with pytest.raises(PolicyError, match=r"policy tests failed: acme\.s3\.test_wrong .*: fail"):
        load_policies([tmp_path])
    assert load_policies([tmp_path], run_tests=False).policies


def test_duplicate_ids_are_rejected(tmp_path: Path):
    write(tmp_path, "a.rego", S3)
    write(tmp_path, "b.rego", S3.replace("package acme.s3", "package acme.s4"))
    with pytest.raises(PolicyError, match="policy id 'my-public-bucket' is also used by"):
        load_policies([tmp_path])


def test_constraint_without_template_is_rejected(tmp_path: Path):
    text = (POLICIES / "gatekeeper_privileged" / "constraint.yaml").read_text()
    write(tmp_path, "constraint.yaml", text)
    with pytest.raises(PolicyError, match="no ConstraintTemplate defines kind"):
        load_policies([tmp_path])


def test_gatekeeper_constraint_metadata_from_annotations():
    (policy,) = load_policies([POLICIES / "gatekeeper_privileged"]).policies
    assert policy.id == "psp-privileged-container"
    assert (policy.shape, policy.severity, policy.decisions) == (
        "kubernetes",
        "high",
        ("violation",),
    )
    assert policy.custom["controls"] == {
        "nist-800-53-r5": ["AC-6", "CM-7"],
        "pci-dss-4.0": ["2.2.6"],
        "cis-k8s-1.8.0": ["5.2.2"],
    }
    assert policy.title == "Privileged Container"


def test_unsupported_constraint_match_field_is_an_error():
    doc = {
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": "K8sX",
        "metadata": {"name": "x"},
        "spec": {"match": {"namespaceSelector": {"matchLabels": {"a": "b"}}}},
    }
    with pytest.raises(ValueError, match=r"spec\.match\.namespaceSelector is not supported"):
        parse_constraint(doc)


def test_constraint_match_by_kind_namespace_and_labels():
    constraint = parse_constraint(
        {
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": "K8sX",
            "metadata": {"name": "x"},
            "spec": {
                "match": {
                    "kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}],
                    "namespaces": ["pay*"],
                    "labelSelector": {"matchLabels": {"app": "api"}},
                }
            },
        }
    )
    review = admission_review(audit("create", "deployments", None, obj=deployment()).to_dict())
    assert review is not None and review["kind"]["kind"] == "Deployment"
    assert constraint.matches(review)
    assert not constraint.matches({**review, "namespace": "kube-system"})
    assert not constraint.matches({**review, "kind": {"group": "", "kind": "Pod"}})


def test_admission_review_only_for_create_and_update_with_an_object():
    created = audit("create", "deployments", None, obj=deployment()).to_dict()
    review = admission_review(created)
    assert review["operation"] == "CREATE" and review["object"]["metadata"]["name"] == "api"
    assert review["userInfo"]["username"] == "alice"
    patched = audit("patch", "deployments", "api", obj={"spec": {}}).to_dict()
    assert admission_review(patched) is None
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"k": "dg=="},
    }
    assert admission_review(audit("create", "secrets", None, obj=secret).to_dict()) is None


def test_terraform_input_is_a_one_resource_plan():
    event = {
        "type": "tf_change",
        "attributes": {
            "address": "aws_s3_bucket_acl.logs",
            "resource_type": "aws_s3_bucket_acl",
            "resource_name": "logs",
            "mode": "managed",
            "actions": ["create"],
            "before": None,
            "after": {"acl": "public-read"},
            "format_version": "1.2",
        },
    }
    plan = terraform_input(event)
    assert plan["resource_changes"] == [
        {
            "address": "aws_s3_bucket_acl.logs",
            "mode": "managed",
            "type": "aws_s3_bucket_acl",
            "name": "logs",
            "provider_name": None,
            "change": {"actions": ["create"], "before": None, "after": {"acl": "public-read"}},
        }
    ]
    assert terraform_input({"type": "k8s_audit"}) is None


def test_resource_types_skip_other_resources_unevaluated():
    policies = load_policies([bundled_policy_dir()])
    s3 = next(p for p in policies.policies if p.id == "tf-s3-bucket-public-acl")
    event = {"type": "tf_change", "attributes": {"resource_type": "aws_instance", "after": {}}}
    assert policies.check(s3, event) is None
    event["attributes"] = {"resource_type": "aws_s3_bucket_acl", "address": "a.b"}
    event["attributes"]["after"] = {"acl": "public-read"}
    assert policies.check(s3, event) == ("a.b: canned ACL public-read makes the bucket public",)


def test_inline_test_with_with_is_rejected_with_a_hint(tmp_path: Path):
    inline = S3 + '\ntest_x if {\n\tcount(deny) == 1 with input as {"resource_changes": []}\n}\n'
    write(tmp_path, "s3.rego", inline)
    with pytest.raises(PolicyError, match=r"rego-localref.*move tests into \*_test\.rego"):
        load_policies([tmp_path])


def test_bundled_template_runs_once_a_constraint_instantiates_it():
    """The seccomp template ships without a Constraint (opt-in, like Gatekeeper's library):
    docs/policies/ has one, which a VIGIL_POLICY_DIR copy turns on."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "policies"
    policies = load_policies([bundled_policy_dir(), docs])
    seccomp = next(p for p in policies.policies if p.id == "k8s-seccomp-unconfined")
    assert seccomp.custom["controls"]["cis-k8s-1.8.0"] == ["5.7.2"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "payments"},
        "spec": {
            "securityContext": {"seccompProfile": {"type": "Unconfined"}},
            "containers": [{"name": "app"}],
        },
    }
    event = audit("create", "pods", None, obj=pod).to_dict()
    assert policies.check(seccomp, event) == ("Pod web: the pod runs with seccomp Unconfined",)
