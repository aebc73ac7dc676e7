"""AWS CloudTrail management and data events.

Source of truth: the CloudTrail record contents reference (AWS CloudTrail User Guide,
"CloudTrail record contents"): `eventTime`, `eventSource`, `eventName`, `eventID`,
`userIdentity{type, arn, accountId, userName, accessKeyId, sessionContext}`, `sourceIPAddress`,
`userAgent`, `errorCode`, `errorMessage`, `requestParameters`, `responseElements`,
`additionalEventData`, `readOnly`, `managementEvent`, `resources[]{ARN}`, `recipientAccountId`.
A record may be one event, a log file `{"Records": [...]}`, a JSON array of events (as Stratus
Red Team publishes them), or an EventBridge "AWS API Call via CloudTrail" envelope (`detail`).

Entity: `aws:<account>/<target>`, the target being the most specific resource named in
requestParameters (instance, security group, snapshot, bucket, secret, user, role, trail...;
an ARN is reduced to its last name segment), else the service (`eventSource` without
`.amazonaws.com`).

A successful call that changes security posture also carries what it changed: `changes` and,
for security-group rules an Authorize response names, `rule_paths` (app/sources/
cloudtrail_changes.py), which the drift stage reads.

Severity:
- high: StopLogging, DeleteTrail, PutEventSelectors, LeaveOrganization (logging/organization
  defence evasion); attaching or putting an admin policy (AdministratorAccess or `"*"` actions);
  AuthorizeSecurityGroupIngress open to the world (`/0`); ModifySnapshotAttribute adding
  createVolumePermission (sharing a snapshot); any call by the root user.
- medium: CreateUser, CreateLoginProfile, UpdateLoginProfile, CreateAccessKey, other policy
  attachments, other ingress rules or snapshot attribute changes, UpdateTrail, GetSecretValue,
  BatchGetSecretValue, a successful ConsoleLogin without MFA.
- low: a call denied (AccessDenied*, *UnauthorizedOperation, Unauthorized*), a failed console
  login, or a sensitive call that failed for another reason (it did not take effect).
- info: everything else.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from app.model.events import Event, event_id, max_severity
from app.model.paths import dig
from app.sources.base import (
    check_time_range,
    compact_value,
    optional,
    require,
    require_object,
    require_time,
)
from app.sources.cloudtrail_changes import call_changes
from app.sources.errors import ErrorCode, NormalizeError

HIGH_CALLS = frozenset({"StopLogging", "DeleteTrail", "PutEventSelectors", "LeaveOrganization"})
MEDIUM_CALLS = frozenset(
    {
        "CreateUser",
        "CreateLoginProfile",
        "UpdateLoginProfile",
        "CreateAccessKey",
        "UpdateTrail",
        "GetSecretValue",
        "BatchGetSecretValue",
        "AuthorizeSecurityGroupIngress",
        "ModifySnapshotAttribute",
    }
)
POLICY_CALLS = frozenset(
    {
        "AttachUserPolicy",
        "AttachRolePolicy",
        "AttachGroupPolicy",
        "PutUserPolicy",
        "PutRolePolicy",
        "PutGroupPolicy",
    }
)
_DENIED = re.compile(r"(?i)accessdenied|unauthorized|forbidden")
_WILDCARD_ACTION = re.compile(r'"Action"\s*:\s*(\[\s*)?"\*"')
#: requestParameters keys naming the call's target, most specific first.
TARGET_KEYS = (
    "instanceId",
    "groupId",
    "snapshotId",
    "volumeId",
    "bucketName",
    "secretId",
    "secretIdList",
    "userName",
    "roleName",
    "roleArn",
    "groupName",
    "policyArn",
    "policyName",
    "functionName",
    "keyId",
    "dBInstanceIdentifier",
    "clusterName",
    "trailName",
    "name",
    "imageId",
)


class CloudTrailAdapter:
    """One `cloud_api_call` event per CloudTrail record, keyed by account and target."""

    name = "cloudtrail"
    family = "cloudtrail"

    def matches(self, doc: Any) -> bool:
        if isinstance(doc, list):
            return bool(doc) and _is_record(doc[0])
        if not isinstance(doc, dict):
            return False
        if isinstance(doc.get("Records"), list):
            records = doc["Records"]
            return not records or _is_record(records[0])
        if "via CloudTrail" in str(doc.get("detail-type", "")):
            return _is_record(doc.get("detail"))
        return _is_record(doc)

    def normalize(self, doc: Any, raw: bytes) -> list[Event]:
        if isinstance(doc, list):
            records, where = doc, "$"
        elif isinstance(doc, dict) and "Records" in doc:
            records, where = require(doc, "Records", list), "Records"
        elif isinstance(doc, dict) and "detail-type" in doc:
            records, where = [require(doc, "detail", dict)], "detail"
        else:
            records, where = [require_object(doc, "CloudTrail record")], "$"
        if not records:
            raise NormalizeError(ErrorCode.EMPTY, "CloudTrail log file has no records")
        return [
            self._event(require_object(record, f"{where}[{index}]"))
            for index, record in enumerate(records)
        ]

    def _event(self, record: dict[str, Any]) -> Event:
        ts_ms = check_time_range(require_time(record, "eventTime"), "eventTime")
        name = require(record, "eventName", str)
        source = require(record, "eventSource", str)
        identity = optional(record, "userIdentity", dict, {})
        params = record.get("requestParameters")
        response = record.get("responseElements")
        account = (
            optional(record, "recipientAccountId", str)
            or optional(identity, "accountId", str)
            or "unknown"
        )
        service = source.removesuffix(".amazonaws.com")
        target = _target(params) or _target(response) or service
        error_code = optional(record, "errorCode", str)
        severity, reasons = _assess(name, record, identity, params, error_code)
        eid = optional(record, "eventID", str)
        attributes: dict[str, Any] = {
            "event_id": eid,
            "event_name": name,
            "event_source": source,
            "event_type": optional(record, "eventType", str),
            "aws_region": optional(record, "awsRegion", str),
            "source_ip": optional(record, "sourceIPAddress", str),
            "user_agent": optional(record, "userAgent", str),
            "user_type": optional(identity, "type", str),
            "principal_arn": optional(identity, "arn", str),
            "principal": _principal(identity),
            "session_issuer_arn": optional(identity, "sessionContext.sessionIssuer.arn", str),
            "invoked_by": optional(identity, "invokedBy", str),
            "account_id": account,
            "access_key_id": optional(identity, "accessKeyId", str),
            "mfa_authenticated": _mfa(record, identity),
            "error_code": error_code,
            "error_message": optional(record, "errorMessage", str),
            "read_only": _flag(record.get("readOnly")),
            "management_event": _flag(record.get("managementEvent")),
            "request_id": optional(record, "requestID", str),
            "request_parameters": compact_value(params),
            "response_elements": compact_value(response),
            "resources": _resource_arns(record.get("resources")),
            "target": target,
            "risk_reasons": reasons,
        }
        if not error_code:  # a failed call changed nothing
            changes, rule_paths = call_changes(
                attributes["request_parameters"], attributes["response_elements"], name
            )
            if changes:
                attributes["changes"] = changes
            if rule_paths:
                attributes["rule_paths"] = rule_paths
        return Event(
            id=event_id(self.name, eid) if eid else event_id(self.name, "record", record),
            source=self.name,
            type="cloud_api_call",
            ts_ms=ts_ms,
            entity=f"aws:{account}/{target}",
            severity=severity,
            attributes=attributes,
        )


def _is_record(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and "eventName" in doc
        and "eventTime" in doc
        and str(doc.get("eventSource", "")).endswith(".amazonaws.com")
    )


def _target(params: Any) -> str | None:
    """The most specific resource a request names (see TARGET_KEYS), ARNs cut to the name."""
    if not isinstance(params, dict):
        return None
    instances = dig(params, "instancesSet", "items")
    if isinstance(instances, list):
        ids = [i.get("instanceId") for i in instances if isinstance(i, dict)]
        if ids and isinstance(ids[0], str) and ids[0]:
            return ids[0]
    for key in TARGET_KEYS:
        value = params.get(key)
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, str) and value:
            return _arn_name(value)
    return None


def _arn_name(value: str) -> str:
    """`arn:aws:iam::1:role/path/name` -> `name`; anything that is not an ARN is kept."""
    if not value.startswith("arn:"):
        return value
    resource = value.split(":", 5)[-1]
    return re.split(r"[/:]", resource)[-1] or resource


def _principal(identity: dict[str, Any]) -> str | None:
    """userName, else the role session name, else root / the invoking service."""
    user = identity.get("userName")
    if isinstance(user, str) and user:
        return user
    arn = identity.get("arn")
    if identity.get("type") == "AssumedRole" and isinstance(arn, str) and "/" in arn:
        return arn.rsplit("/", 1)[-1]
    if identity.get("type") == "Root":
        return "root"
    invoked = identity.get("invokedBy")
    return invoked if isinstance(invoked, str) else None


def _mfa(record: dict[str, Any], identity: dict[str, Any]) -> bool | None:
    """additionalEventData.MFAUsed (console sign-in), else the session's mfaAuthenticated."""
    used = dig(record, "additionalEventData", "MFAUsed")
    if isinstance(used, str):
        return used.lower() == "yes"
    return _flag(dig(identity, "sessionContext", "attributes", "mfaAuthenticated"))


def _flag(value: Any) -> bool | None:
    """A CloudTrail boolean, which older records write as the strings "true"/"false"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _resource_arns(resources: Any) -> list[str]:
    if not isinstance(resources, list):
        return []
    return [r["ARN"] for r in resources if isinstance(r, dict) and isinstance(r.get("ARN"), str)]


def _assess(
    name: str,
    record: dict[str, Any],
    identity: dict[str, Any],
    params: Any,
    error_code: str | None,
) -> tuple[str, list[str]]:
    """Severity and the reasons behind it (see the module docstring)."""
    params = params if isinstance(params, dict) else {}
    reasons: list[str] = []
    severity = "info"

    def flag(reason: str, level: str) -> None:
        nonlocal severity
        reasons.append(reason)
        severity = max_severity(severity, level)

    if name in HIGH_CALLS:
        flag("defense_evasion" if name != "LeaveOrganization" else "leave_organization", "high")
    elif name in POLICY_CALLS:
        admin = str(params.get("policyArn", "")).endswith("/AdministratorAccess") or bool(
            _WILDCARD_ACTION.search(str(params.get("policyDocument", "")))
        )
        flag("admin_policy" if admin else "policy_change", "high" if admin else "medium")
    elif name == "AuthorizeSecurityGroupIngress" and _world_open(params):
        flag("ingress_open_to_world", "high")
    elif name == "ModifySnapshotAttribute" and dig(params, "createVolumePermission", "add"):
        flag("snapshot_shared", "high")
    elif name in MEDIUM_CALLS:
        flag("sensitive_call", "medium")
    console_failed = name == "ConsoleLogin" and (
        dig(record, "responseElements", "ConsoleLogin") == "Failure"
    )
    if name == "ConsoleLogin" and not console_failed and _mfa(record, identity) is False:
        flag("console_login_without_mfa", "medium")
    if identity.get("type") == "Root" and not identity.get("invokedBy"):
        flag("root_usage", "high")
    if error_code is not None and _DENIED.search(error_code):
        reasons.append("access_denied")
        severity = "low"
    elif console_failed:
        reasons.append("console_login_failed")
        severity = "low"
    elif error_code is not None and severity != "info":
        reasons.append("failed")
        severity = "low"
    return severity, reasons


def _world_open(params: dict[str, Any]) -> bool:
    """Any CIDR in the request (flat `cidrIp` or ipPermissions) with a /0 prefix."""
    text = orjson.dumps(params).decode()
    return bool(re.search(r'"cidr(?:Ip|Ipv6)"\s*:\s*"[^"]*/0"', text))
