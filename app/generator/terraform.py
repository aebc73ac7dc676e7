"""`terraform show -json` plans of one service's stack (security group, task role, database):
mostly no-ops and updates, sometimes a new IAM policy, and often drift (someone opened SSH to
the world in the console)."""

from __future__ import annotations

from typing import Any

import orjson

from app.generator.fleet import NAMESPACE, ROLE_ARN, SECURITY_GROUPS, SERVICES, hex_id
from app.generator.source import Source


class Terraform(Source):
    """Terraform plans."""

    def plan(self, ts_ms: int) -> bytes:
        """A small `terraform show -json` plan of one service's stack, sometimes with drift."""
        rnd = self.rnd
        service = rnd.choice(SERVICES)
        changes = []
        for address, state in _tf_resources(service):
            action = rnd.choices(("no-op", "update", "replace"), (70, 25, 5))[0]
            if action == "replace" and "engine" not in state:
                action = "update"
            changes.append(_tf_change(address, state, action))
        if rnd.random() < 0.15:
            address = f"aws_iam_role_policy.{service}_s3_read"
            policy = {"name": f"{service}-s3-read", "role": f"{service}-task", "policy": "{}"}
            changes.append(_tf_change(address, policy, "create"))
        plan: dict[str, Any] = {
            "format_version": "1.2",
            "terraform_version": "1.7.5",
            "resource_changes": changes,
        }
        if rnd.random() < 0.35:  # someone opened SSH to the world in the console
            address, state = _tf_resources(service)[0]
            after = dict(state, ingress=[*state["ingress"], _ingress(22, "0.0.0.0/0")])
            plan["resource_drift"] = [_tf_entry(address, ["update"], state, after)]
            plan["relevant_attributes"] = [{"resource": address, "attribute": ["ingress"]}]
        plan.update(timestamp=self.clock.seconds(ts_ms), applyable=True, complete=True)
        plan["errored"] = False
        return orjson.dumps(plan)


def _ingress(port: int, cidr: str) -> dict[str, Any]:
    return {
        "cidr_blocks": [cidr],
        "description": "",
        "from_port": port,
        "ipv6_cidr_blocks": [],
        "protocol": "tcp",
        "security_groups": [],
        "self": False,
        "to_port": port,
    }


def _tf_resources(service: str) -> list[tuple[str, dict[str, Any]]]:
    """(address, current state) of the resources of one service's stack."""
    return [
        (
            f"aws_security_group.{service}",
            {
                "name": f"{service}-sg",
                "id": SECURITY_GROUPS[service],
                "ingress": [_ingress(443, "10.0.0.0/16")],
                "tags": {"service": service, "env": NAMESPACE},
            },
        ),
        (
            f"aws_iam_role.{service}_task",
            {
                "name": f"{service}-task",
                "arn": f"{ROLE_ARN}/{service}-task",
                "max_session_duration": 3600,
                "tags": {"service": service},
            },
        ),
        (
            f"aws_db_instance.{service}",
            {
                "identifier": f"{service}-prod",
                "engine": "postgres",
                "engine_version": "15.5",
                "instance_class": "db.r6g.large",
                "password": f"gen-{hex_id(service, 'db', size=6)}",
            },
        ),
    ]


def _tf_change(address: str, state: dict[str, Any], action: str) -> dict[str, Any]:
    if action == "create":
        return _tf_entry(address, ["create"], None, state, unknown={"id": True, "arn": True})
    if action == "update":
        key = "instance_class" if "instance_class" in state else "tags"
        value = "db.r6g.xlarge" if key == "instance_class" else {**state["tags"], "owner": "sre"}
        return _tf_entry(address, ["update"], state, {**state, key: value})
    if action == "replace":
        after = {**state, "engine_version": "16.2"}
        entry = _tf_entry(address, ["delete", "create"], state, after, unknown={"id": True})
        entry["action_reason"] = "replace_because_cannot_update"
        return entry
    return _tf_entry(address, ["no-op"], state, state)


def _tf_entry(
    address: str,
    actions: list[str],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    unknown: dict[str, Any] | None = None,
) -> dict[str, Any]:
    kind, name = address.split(".", 1)
    sensitive = {"password": True} if "aws_db_instance" in address else {}
    return {
        "address": address,
        "mode": "managed",
        "type": kind,
        "name": name,
        "provider_name": "registry.terraform.io/hashicorp/aws",
        "change": {
            "actions": actions,
            "before": before,
            "after": after,
            "after_unknown": unknown or {},
            "before_sensitive": sensitive if before is not None else False,
            "after_sensitive": sensitive if after is not None else False,
        },
    }
