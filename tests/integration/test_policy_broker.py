"""Through the real broker: a Gatekeeper ConstraintTemplate written for Gatekeeper (Rego v1) and
its Constraint, loaded from VIGIL_POLICY_DIR, turn the audit event of a privileged pod's
creation into a violation and an alert with the constraint's controls, and leave the
unprivileged pod alone, as the offline replay does."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import orjson
import pytest

from app.model.events import format_time, parse_time
from app.policy.loader import bundled_policy_dir, load_policies
from app.replay import offline_replay

pytestmark = pytest.mark.integration

POLICY_DIR = Path(__file__).resolve().parents[1] / "policies" / "gatekeeper_privileged"
RULE = "psp-privileged-container"
CONTROLS = "cis-k8s-1.8.0:5.2.2;nist-800-53-r5:AC-6,CM-7;pci-dss-4.0:2.2.6"
T0 = parse_time("2024-08-01T12:00:00Z")
WAIT_S = 90


def pod_created(name: str, privileged: bool, at_ms: int) -> dict:
    """The audit event (Request level, ResponseComplete) of `kubectl run` creating a pod."""
    stamp = format_time(at_ms)
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Request",
        "auditID": f"00000000-0000-4000-8000-{at_ms % 10**12:012d}",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/payments/pods",
        "verb": "create",
        "user": {"username": "alice", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.8"],
        "userAgent": "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819",
        "objectRef": {"resource": "pods", "namespace": "payments", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "payments"},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "registry.example.com/payments/api:1.4.2",
                        "securityContext": {"privileged": privileged},
                    }
                ]
            },
        },
        "requestReceivedTimestamp": stamp,
        "stageTimestamp": stamp,
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }


def test_gatekeeper_policy_turns_a_privileged_pod_into_an_alert_with_controls(
    workers, tmp_path: Path
):
    records = [
        pod_created("debug-shell", True, T0),
        pod_created("web", False, T0 + 1_000),
        pod_created("web-2", False, T0 + 600_000),
    ]
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    # group_wait 0: an alert is notified as soon as the partition clock reaches it
    settings = dataclasses.replace(workers.settings, policy_dir=str(POLICY_DIR), group_wait_ms=0)
    offline = list(offline_replay([path], settings, flush=False))
    expected = [
        r["value"]
        for r in offline
        if r["topic"].endswith("vigil.alerts") and r["value"]["labels"]["alertname"] == RULE
    ]
    assert len(expected) == 1, offline
    assert expected[0]["labels"]["controls"] == CONTROLS
    assert expected[0]["labels"]["entity"] == "k8s:payments/pods/debug-shell"

    workers.produce(
        workers.topic("raw:k8s-audit"), [orjson.dumps(r) for r in records], key=b"audit"
    )
    worker = workers.start("policy", VIGIL_POLICY_DIR=str(POLICY_DIR), VIGIL_GROUP_WAIT_MS="0")

    def is_expected(record: dict) -> bool:
        return record["value"]["id"] == expected[0]["id"]

    alerts = workers.collect(
        workers.topic("alerts"), count=50, timeout_s=WAIT_S, worker=worker, stop_when=is_expected
    )
    if not any(is_expected(r) for r in alerts):
        events = workers.collect(workers.topic("events"), count=3, timeout_s=10, worker=worker)
        violations = workers.collect(workers.topic("violations"), count=1, timeout_s=5)
        where = (
            "late: the worker has not normalized the audit events yet"
            if len(events) < 3
            else "lost: the events and "
            + ("the violation" if violations else "no violation")
            + " arrived but not the alert"
        )
        raise AssertionError(f"no {RULE} alert within {WAIT_S} s ({where}):\n{worker.log_tail()}")
    alert = next(r["value"] for r in alerts if is_expected(r))
    assert alert["labels"]["controls"] == CONTROLS
    assert alert["severity"] == "high"
    firing = [
        r["value"]["labels"]["entity"]
        for r in alerts
        if r["value"]["labels"].get("alertname") == RULE and r["value"]["status"] == "firing"
    ]
    assert firing == ["k8s:payments/pods/debug-shell"], firing


def _log_has(worker, text: str) -> bool:
    return text in worker.log_path.read_text(errors="replace")


def test_policy_reload_on_the_control_topic_without_a_restart(workers, tmp_path: Path):
    """Empty policy dir at start; the Gatekeeper policy is copied in and `policy.reload` sent:
    the running worker flags the next privileged pod, not the one judged before. A reload with
    a v0 file is rejected and the loaded policy keeps running. (A policy set applies to the
    events released after it loaded: events still held for the partition clock get the new
    one.)"""
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    worker = workers.start("reload", VIGIL_POLICY_DIR=str(policy_dir), VIGIL_GROUP_WAIT_MS="0")
    raw = workers.topic("raw:k8s-audit")
    control = workers.topic("control")

    def reload(seq_text: str) -> None:
        command = {"command": "policy.reload", "by": "integration-test", "why": "test"}
        workers.produce(control, [orjson.dumps(command)])
        deadline = time.monotonic() + WAIT_S
        while not _log_has(worker, seq_text):
            assert worker.process.poll() is None, worker.log_tail()
            assert time.monotonic() < deadline, (
                f"no '{seq_text}' in the worker log within {WAIT_S} s (reload late or lost):\n"
                f"{worker.log_tail()}"
            )
            time.sleep(0.5)

    first = [pod_created("before", True, T0), pod_created("filler", False, T0 + 120_000)]
    workers.produce(raw, [orjson.dumps(r) for r in first], key=b"audit")

    def yaml_rule_fired(record: dict) -> bool:  # "before" was judged (by the YAML pack)
        labels = record["value"]["labels"]
        return labels.get("alertname") == "k8s-privileged-container"

    judged = workers.collect(
        workers.topic("alerts"), 100, WAIT_S, worker=worker, stop_when=yaml_rule_fired
    )
    assert any(yaml_rule_fired(r) for r in judged), (
        f"the first privileged pod was not judged within {WAIT_S} s (late or lost):\n"
        f"{worker.log_tail()}"
    )
    for name in ("template.yaml", "constraint.yaml"):
        (policy_dir / name).write_text((POLICY_DIR / name).read_text())
    bundled = len(load_policies([bundled_policy_dir()]).policies)
    reload(f"loaded {bundled + 1} policies")
    (policy_dir / "v0.rego").write_text("package main\n\ndeny[msg] {\n  msg := 1\n}\n")
    reload("rejected, previous set kept")
    records = [pod_created("after", True, T0 + 180_000), pod_created("later", False, T0 + 600_000)]
    workers.produce(raw, [orjson.dumps(r) for r in records], key=b"audit")

    def flagged(record: dict) -> bool:
        labels = record["value"]["labels"]
        return labels.get("alertname") == RULE and labels["entity"].endswith("/after")

    alerts = workers.collect(
        workers.topic("alerts"), count=100, timeout_s=WAIT_S, worker=worker, stop_when=flagged
    )
    assert any(flagged(r) for r in alerts), (
        f"no {RULE} alert for the pod created after the reload within {WAIT_S} s "
        f"({len(alerts)} alerts arrived: late or lost):\n{worker.log_tail()}"
    )
    before = [r for r in alerts if r["value"]["labels"].get("alertname") == RULE]
    assert all(r["value"]["labels"]["entity"].endswith("/after") for r in before), [
        (r["value"]["labels"]["entity"], r["value"]["status"]) for r in before
    ]
