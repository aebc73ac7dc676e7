"""Builders of raw CloudTrail records and Kubernetes audit events in the shapes of the real
fixtures (shared/fixtures/cloudtrail, shared/fixtures/k8s-audit), normalized by the real
adapters, for the drift and compliance tests."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import orjson

from app.model.events import Event, format_time, parse_time
from app.sources.normalize import Normalizer

NORMALIZER = Normalizer()
T0 = parse_time("2024-08-01T12:00:00Z")
SEC = 1000
DAY = 86_400_000
ACCOUNT = "111122223333"
DIGEST_IMAGE = "registry.example.com/payments/api@sha256:" + "ab" * 32


def _uid(*parts: Any) -> str:
    digest = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def normalize(record: Any, family: str) -> list[Event]:
    return NORMALIZER.normalize(orjson.dumps(record), family=family)


def fixture_events(path: Path, family: str) -> list[Event]:
    return NORMALIZER.normalize(path.read_bytes(), family=family)


# ---- CloudTrail ------------------------------------------------------------------------


def ct(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    source: str = "ec2.amazonaws.com",
    at: int = T0,
    user: str = "alice",
    user_type: str = "IAMUser",
    error: str | None = None,
    response: Any = None,
    extra: dict[str, Any] | None = None,
    agent: str = "aws-cli/2.15.30 Python/3.11.8 Linux/6.1",
    role: str | None = None,
) -> Event:
    """One CloudTrail management event (the Stratus Red Team record shape)."""
    if user_type == "Root":
        identity: dict[str, Any] = {
            "type": "Root",
            "principalId": ACCOUNT,
            "arn": f"arn:aws:iam::{ACCOUNT}:root",
            "accountId": ACCOUNT,
        }
    elif role is not None:
        identity = {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:session",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{user}",
            "accountId": ACCOUNT,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                    "accountId": ACCOUNT,
                    "userName": role,
                },
                "attributes": {"mfaAuthenticated": "false"},
            },
        }
    else:
        identity = {
            "type": user_type,
            "principalId": "AIDAEXAMPLE",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}",
            "accountId": ACCOUNT,
            "userName": user,
        }
    record: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": format_time(at).replace(".000Z", "Z"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": agent,
        "requestParameters": params,
        "responseElements": response,
        "requestID": _uid("req", name, params, at, user),
        "eventID": _uid("evt", name, params, at, user, error),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
    }
    if error is not None:
        record["errorCode"] = error
        record["errorMessage"] = "denied"
    record.update(extra or {})
    (event,) = normalize(record, "cloudtrail")
    return event


def console_login(mfa: bool, at: int = T0, user: str = "alice", success: bool = True) -> Event:
    return ct(
        "ConsoleLogin",
        None,
        source="signin.amazonaws.com",
        at=at,
        user=user,
        response={"ConsoleLogin": "Success" if success else "Failure"},
        extra={
            "additionalEventData": {
                "LoginTo": "https://console.aws.amazon.com/console/home",
                "MobileVersion": "No",
                "MFAUsed": "Yes" if mfa else "No",
            }
        },
    )


def sg_ingress(
    port: int, cidr: str, *, revoke: bool = False, flat: bool = False, at: int = T0, **kw: Any
) -> Event:
    name = "RevokeSecurityGroupIngress" if revoke else "AuthorizeSecurityGroupIngress"
    if flat:
        params: dict[str, Any] = {
            "groupId": "sg-0123456789abcdef0",
            "ipPermissions": {},
            "cidrIp": cidr,
            "ipProtocol": "tcp",
            "fromPort": port,
            "toPort": port,
        }
    else:
        ranges = (
            {"ipv6Ranges": {"items": [{"cidrIpv6": cidr}]}}
            if ":" in cidr
            else {"ipRanges": {"items": [{"cidrIp": cidr}]}}
        )
        params = {
            "groupId": "sg-0123456789abcdef0",
            "ipPermissions": {
                "items": [{"ipProtocol": "tcp", "fromPort": port, "toPort": port, **ranges}]
            },
        }
    return ct(name, params, at=at, **kw)


# ---- Kubernetes audit ------------------------------------------------------------------


def pod_spec(
    image: str = DIGEST_IMAGE,
    *,
    privileged: bool | None = None,
    host_network: bool = False,
    host_pid: bool = False,
    host_ipc: bool = False,
    host_path: str | None = None,
    run_as_user: int | None = 10001,
    run_as_non_root: bool = True,
    limits: bool = True,
    caps: list[str] | None = None,
    escalation: bool | None = False,
) -> dict[str, Any]:
    security: dict[str, Any] = {}
    if privileged is not None:
        security["privileged"] = privileged
    if escalation is not None:
        security["allowPrivilegeEscalation"] = escalation
    if caps:
        security["capabilities"] = {"add": caps}
    container: dict[str, Any] = {
        "name": "api",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": security,
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}} if limits else {},
    }
    pod: dict[str, Any] = {"containers": [container], "restartPolicy": "Always"}
    context: dict[str, Any] = {}
    if run_as_user is not None:
        context["runAsUser"] = run_as_user
    if run_as_non_root:
        context["runAsNonRoot"] = True
    pod["securityContext"] = context
    if host_network:
        pod["hostNetwork"] = True
    if host_pid:
        pod["hostPID"] = True
    if host_ipc:
        pod["hostIPC"] = True
    if host_path:
        pod["volumes"] = [{"name": "host", "hostPath": {"path": host_path}}]
        container["volumeMounts"] = [{"name": "host", "mountPath": "/host"}]
    return pod


def deployment(name: str = "api", namespace: str = "payments", **spec: Any) -> dict[str, Any]:
    """A Deployment request object shaped like the fixture's `nginx-deployment` create."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": pod_spec(**spec),
            },
        },
    }


def container_patch(image: str = DIGEST_IMAGE, **security: Any) -> dict[str, Any]:
    """A strategic-merge patch of the pod template's container (what `kubectl patch` sends)."""
    return {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "api", "image": image, "securityContext": security}]
                }
            }
        }
    }


_API_GROUPS = {
    "deployments": "apps",
    "clusterrolebindings": "rbac.authorization.k8s.io",
    "rolebindings": "rbac.authorization.k8s.io",
    "clusterroles": "rbac.authorization.k8s.io",
    "roles": "rbac.authorization.k8s.io",
    "networkpolicies": "networking.k8s.io",
}


def audit(
    verb: str,
    resource: str,
    name: str | None,
    *,
    namespace: str | None = "payments",
    obj: dict[str, Any] | None = None,
    user: str = "alice",
    at: int = T0,
    code: int | None = None,
    decision: str = "allow",
    subresource: str | None = None,
    stage: str = "ResponseComplete",
    impersonate: str | None = None,
    agent: str = "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819",
) -> Event:
    """One audit.k8s.io/v1 event in the fixture's shape (Request level)."""
    group = _API_GROUPS.get(resource, "")
    ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
    if group:
        ref["apiGroup"] = group
    if namespace:
        ref["namespace"] = namespace
    if name:
        ref["name"] = name
    if subresource:
        ref["subresource"] = subresource
    if code is None:
        code = 403 if decision == "forbid" else 201 if verb == "create" else 200
    stamp = format_time(at).replace("Z", "000Z")
    record: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Request",
        "auditID": _uid("audit", verb, resource, name, namespace, obj, user, at, subresource),
        "stage": stage,
        "requestURI": f"/apis/{group or 'v1'}/namespaces/{namespace}/{resource}/{name or ''}",
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.8"],
        "userAgent": agent,
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": stamp,
        "stageTimestamp": stamp,
        "annotations": {
            "authorization.k8s.io/decision": decision,
            "authorization.k8s.io/reason": "",
        },
    }
    if obj is not None:
        record["requestObject"] = obj
    if impersonate:
        record["impersonatedUser"] = {"username": impersonate, "groups": ["system:authenticated"]}
    (event,) = normalize(record, "k8s-audit")
    return event


def binding(role: str, name: str = "ops-admin") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}],
    }


# ---- other canonical events ------------------------------------------------------------


def with_attributes(event: Event, at: int | None = None, **changes: Any) -> Event:
    """A copy of `event` with attributes changed (and a new id and time when asked)."""
    attributes = {**event.attributes, **changes}
    ts_ms = event.ts_ms if at is None else at
    new_id = _uid("derived", event.id, attributes, ts_ms)[:24]
    return dataclasses.replace(event, attributes=attributes, ts_ms=ts_ms, id=new_id)


def config_compliance(compliance: str, rule: str = "s3-bucket-public-read-prohibited", at=T0):
    """The canonical shape an AWS Config adapter would emit (none exists yet)."""
    return Event(
        id=_uid("config", compliance, rule, at)[:24],
        source="aws-config",
        type="config_compliance",
        ts_ms=at,
        entity=f"aws:{ACCOUNT}/example-bucket",
        severity="medium" if compliance == "NON_COMPLIANT" else "info",
        attributes={
            "config_rule_name": rule,
            "compliance_type": compliance,
            "resource_type": "AWS::S3::Bucket",
            "resource_id": "example-bucket",
            "account_id": ACCOUNT,
            "aws_region": "us-east-1",
        },
    )
