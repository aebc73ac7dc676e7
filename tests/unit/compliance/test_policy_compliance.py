"""Rego policies as compliance rules (tables/compliance/policy_rules.py): violations with controls,
alerts and posture from policies written by others, reloads that keep a working set, the fixtures'
outputs unchanged by the bundled policies, and the `vigil policy` commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from app.cli import main
from app.replay import offline_replay
from app.runtime.staged import StagedState
from app.settings import Settings
from tables.compliance import policy_rules
from tables.compliance.policy_rules import PolicyReloader, compliance_pack
from tables.compliance.rule_pack import load_rule_pack
from tables.compliance.stage import ComplianceConfig, ComplianceStage
from tables.control.commands import apply_command, audit_entry
from tests.unit.compliance.compliance_events import SEC, T0, audit, pod_spec

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PRIVILEGED = POLICIES / "gatekeeper_privileged"
CONFTEST = POLICIES / "conftest_terraform"
CONTROLS = "cis-k8s-1.8.0:5.2.2;nist-800-53-r5:AC-6,CM-7;pci-dss-4.0:2.2.6"


def pod(name: str, namespace: str = "payments", **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": pod_spec(**spec),
    }


def stage_with(policy_dir: Path) -> ComplianceStage:
    pack, _ = compliance_pack(None, str(policy_dir))
    return ComplianceStage(ComplianceConfig(), pack)


def run(stage: ComplianceStage, event):
    return stage.on_event(event, None, StagedState({}), StagedState({}))


def test_gatekeeper_template_flags_a_privileged_pod_and_not_an_unprivileged_one():
    stage = stage_with(PRIVILEGED)
    posture, observed = StagedState({}), StagedState({})
    created = audit("create", "pods", None, obj=pod("debug", privileged=True))
    result = stage.on_event(created, None, posture, observed)
    (violation,) = [v for v in result.violations if v.rule_id == "psp-privileged-container"]
    assert violation.severity == "high"
    assert violation.messages[0].startswith("Privileged container is not allowed: api")
    (alert,) = [a for a in result.alerts if a.labels["alertname"] == "psp-privileged-container"]
    assert alert.labels["controls"] == CONTROLS
    assert alert.annotations["approximate_mappings"] == "pci-dss-4.0"
    assert "Privileged container is not allowed" in alert.annotations["messages"]
    key = "cis-k8s-1.8.0|5.2.2|k8s:payments|k8s:payments/pods/debug"
    assert posture.get(key)["status"] == "fail"
    # the same pod created again without privileges: compliant, the alert resolves
    fixed = audit("create", "pods", None, obj=pod("debug", privileged=False), at=T0 + SEC)
    result = stage.on_event(fixed, None, posture, observed)
    assert not [v for v in result.violations if v.rule_id == "psp-privileged-container"]
    assert [
        a.status for a in result.alerts if a.labels["alertname"] == "psp-privileged-container"
    ] == ["resolved"]
    assert posture.get(key)["status"] == "pass"


def test_gatekeeper_constraint_match_and_parameters_hold():
    stage = stage_with(PRIVILEGED)
    system = audit(
        "create",
        "pods",
        None,
        namespace="kube-system",
        obj=pod("p", "kube-system", privileged=True),
    )
    exempt = audit(
        "create",
        "pods",
        None,
        obj=pod("t", image="registry.example.com/debug/toolbox:1.0", privileged=True),
    )
    deployment = audit(
        "patch",
        "pods",
        "p",
        obj={"spec": {"containers": [{"name": "api", "securityContext": {"privileged": True}}]}},
    )
    for event in (system, exempt, deployment):
        assert not [
            v for v in run(stage, event).violations if v.rule_id == "psp-privileged-container"
        ]


def test_conftest_policy_flags_the_resources_it_targets_in_the_terraform_fixtures(
    fixtures_dir: Path,
):
    paths = sorted((fixtures_dir / "terraform").glob("*.json"))
    settings = Settings(policy_dir=str(CONFTEST))
    flagged = {
        r["value"]["entity"]: r["value"]["messages"]
        for r in offline_replay(paths, settings)
        if r["topic"] == "vigil.violations" and r["value"]["rule_id"] == "main"
    }
    assert flagged == {
        "tf:test_instance.test-delete": [
            "test_instance.test-delete: deleting resources is not allowed"
        ],
        "tf:test_instance.test": ["test_instance.test: deleting resources is not allowed"],
        "tf:null_resource.example": ["null_resource.example: deleting resources is not allowed"],
        'tf:module.files.local_file.foo["file1.txt"]': [
            'module.files.local_file.foo["file1.txt"]: world-writable file permission 0777'
        ],
        'tf:module.files.local_file.foo["file2.txt"]': [
            'module.files.local_file.foo["file2.txt"]: world-writable file permission 0777'
        ],
    }


def _replay(paths: list[Path]) -> list[dict]:
    return [
        r
        for r in offline_replay(paths, Settings())
        if r["topic"] in ("vigil.posture", "vigil.violations", "vigil.alerts")
    ]


def test_bundled_policies_leave_the_fixture_outputs_unchanged(
    fixtures_dir: Path, tmp_path, monkeypatch
):
    """Posture, violations and alerts of every fixture with the bundled Rego policies equal
    those of the YAML pack alone (no fixture writes what they look for)."""
    paths = sorted(
        p
        for family in ("cloudtrail", "k8s-audit", "terraform")
        for p in (fixtures_dir / family).iterdir()
    )
    with_policies = _replay(paths)
    monkeypatch.setattr(policy_rules, "bundled_policy_dir", lambda: tmp_path)
    yaml_only = _replay(paths)
    assert with_policies == yaml_only
    stratus = [p for p in paths if p.name.startswith("stratus-")]
    violated = {r["value"]["event_id"] for r in with_policies if r["topic"] == "vigil.violations"}
    assert violated and len(stratus) == 11


def test_reload_keeps_the_running_set_when_the_new_one_does_not_load(tmp_path: Path):
    shutil.copytree(PRIVILEGED, tmp_path / "policies")
    stage = ComplianceStage(ComplianceConfig())
    reloader = PolicyReloader(stage, None, str(tmp_path / "policies"))
    assert reloader.reload(strict=True).ok
    running = stage.pack
    assert "psp-privileged-container" in {r.id for r in running.rules}
    (tmp_path / "policies" / "broken.rego").write_text("package main\n\ndeny[msg] {\n  true\n}\n")
    result = reloader.reload()
    assert not result.ok and "broken.rego:3: v0 Rego syntax" in result.error
    assert stage.pack is running
    (tmp_path / "policies" / "broken.rego").unlink()
    (tmp_path / "policies" / "constraint.yaml").unlink()
    assert reloader.reload().ok
    assert "psp-privileged-container" not in {r.id for r in stage.pack.rules}
    assert len(stage.pack.rules) == len(load_rule_pack().rules) + 2  # the bundled policies


def test_policy_id_colliding_with_a_yaml_rule_is_rejected(tmp_path: Path):
    text = (
        (PRIVILEGED / "constraint.yaml")
        .read_text()
        .replace("psp-privileged-container", "k8s-privileged-container")
    )
    shutil.copy(PRIVILEGED / "template.yaml", tmp_path / "template.yaml")
    (tmp_path / "constraint.yaml").write_text(text)
    with pytest.raises(ValueError, match="'k8s-privileged-container' is a rule of the YAML pack"):
        compliance_pack(None, str(tmp_path))


def test_policy_reload_control_command_is_audited():
    command = {"command": "policy.reload", "by": "alice", "why": "new constraint"}
    assert apply_command(command, {}) == {}
    assert audit_entry(command, {}) == ("alice", "policy.reload", "new constraint", {})
    with pytest.raises(ValueError, match="'by'"):
        apply_command({"command": "policy.reload"}, {})


def test_cli_policy_test(capsys):
    assert main(["policy", "test", "app/rules/policies"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("PASS: ") and out[-1].split()[-1] in (
        f"{len(out) - 1}/{len(out) - 1}",
    )
    assert main(["policy", "test", str(POLICIES / "gatekeeper_v0")]) == 2
    assert "v0 Rego syntax" in capsys.readouterr().err


def test_cli_policy_eval_on_a_plan_and_a_manifest(fixtures_dir: Path, tmp_path: Path, capsys):
    plan = fixtures_dir / "terraform" / "terraform-json-has_checks.plan.json"
    assert main(["policy", "eval", "--input", str(plan), "-p", str(CONFTEST)]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert orjson.loads(line)["messages"] == [
        'module.files.local_file.foo["file1.txt"]: world-writable file permission 0777',
        'module.files.local_file.foo["file2.txt"]: world-writable file permission 0777',
    ]
    manifest = tmp_path / "pod.json"
    manifest.write_bytes(orjson.dumps(pod("debug", privileged=True)))
    assert main(["policy", "eval", "-i", str(manifest), "-p", str(PRIVILEGED)]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    record = orjson.loads(line)
    assert record["policy"] == "psp-privileged-container" and record["severity"] == "high"
    manifest.write_bytes(orjson.dumps(pod("web", privileged=False)))
    assert main(["policy", "eval", "-i", str(manifest), "-p", str(PRIVILEGED)]) == 0
    assert capsys.readouterr().out == ""


def test_cli_policy_reload_refuses_a_set_that_does_not_load(monkeypatch, capsys):
    monkeypatch.setenv("VIGIL_POLICY_DIR", str(POLICIES / "gatekeeper_v0"))
    monkeypatch.setenv("BROKER_URL", "kafka://127.0.0.1:1")  # never reached
    assert main(["policy", "reload", "--by", "alice"]) == 2
    assert "v0 Rego syntax" in capsys.readouterr().err
