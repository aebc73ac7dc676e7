"""What a successful CloudTrail management call changed: the `changes` of a `cloud_api_call`.

Each change names an attribute path of the call's resource (`logging`, `ingress[tcp:22-22:
0.0.0.0/0]`, `attached_policies[<arn>]`, ...) with its new `value` and, when the call implies
it, its `prior` value (absent: unknown). A security-group rule revoked by its id names the
`rule_id` instead of the path; the rule ids an Authorize response assigns come as
`rule_paths` (id -> path). Only calls that change security posture are read (`OBSERVERS`);
docs/drift.md lists the paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.model.paths import dig

#: One change: `{"path" | "rule_id": ..., "value": ..., "prior": ...}` ("prior" optional).
Change = dict[str, Any]
#: requestParameters, responseElements -> (changes, rule id -> rule path).
Observer = Callable[[dict[str, Any], Any], tuple[list[Change], dict[str, str]]]

_UNKNOWN = object()


def call_changes(params: Any, response: Any, name: str) -> tuple[list[Change], dict[str, str]]:
    """The changes and security-group rule paths of call `name` (none for untracked calls)."""
    observer = OBSERVERS.get(name)
    if observer is None:
        return [], {}
    return observer(params if isinstance(params, dict) else {}, response)


def _change(path: str, value: Any, prior: Any = _UNKNOWN, key: str = "path") -> Change:
    change = {key: path, "value": value}
    if prior is not _UNKNOWN:
        change["prior"] = prior
    return change


def _items(value: Any, *keys: str) -> list[dict[str, Any]]:
    found = dig(value, *keys)
    return [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []


def _sg_path(direction: str, proto: Any, from_port: Any, to_port: Any, source: Any) -> str:
    protocol = "all" if str(proto) in ("-1", "all") else str(proto).lower()
    ports = "*" if protocol == "all" else f"{from_port}-{to_port}"
    return f"{direction}[{protocol}:{ports}:{source}]"


def _sg_rules(params: Any, direction: str) -> list[str]:
    """Rule paths of an Authorize/Revoke request (flat or ipPermissions form)."""
    if not isinstance(params, dict):
        return []
    paths: list[str] = []
    flat = params.get("cidrIp") or params.get("cidrIpv6")
    if isinstance(flat, str):
        paths.append(
            _sg_path(
                direction,
                params.get("ipProtocol"),
                params.get("fromPort"),
                params.get("toPort"),
                flat,
            )
        )
    for item in _items(params, "ipPermissions", "items"):
        proto, lo, hi = item.get("ipProtocol"), item.get("fromPort"), item.get("toPort")
        sources = [r.get("cidrIp") for r in _items(item, "ipRanges", "items")]
        sources += [r.get("cidrIpv6") for r in _items(item, "ipv6Ranges", "items")]
        sources += [g.get("groupId") for g in _items(item, "groups", "items")]
        sources += [p.get("prefixListId") for p in _items(item, "prefixListIds", "items")]
        paths += [_sg_path(direction, proto, lo, hi, s) for s in sources if isinstance(s, str)]
    return sorted(set(paths))


def _sg_rule_paths(response: Any) -> dict[str, str]:
    """securityGroupRuleId -> rule path, from an Authorize response."""
    out: dict[str, str] = {}
    for item in _items(response, "securityGroupRuleSet", "items"):
        rule_id = item.get("securityGroupRuleId")
        source = (
            item.get("cidrIpv4")
            or item.get("cidrIpv6")
            or dig(item, "referencedGroupInfo", "groupId")
            or item.get("prefixListId")
        )
        if isinstance(rule_id, str) and isinstance(source, str):
            direction = "egress" if item.get("isEgress") is True else "ingress"
            out[rule_id] = _sg_path(
                direction, item.get("ipProtocol"), item.get("fromPort"), item.get("toPort"), source
            )
    return out


def _sg(direction: str, grant: bool) -> Observer:
    def observe(p: dict[str, Any], r: Any) -> tuple[list[Change], dict[str, str]]:
        changes = [_change(path, grant, not grant) for path in _sg_rules(p, direction)]
        ids = [i.get("securityGroupRuleId") for i in _items(p, "securityGroupRuleIds", "items")]
        ids += (
            [i for i in p.get("securityGroupRuleIds", []) if isinstance(i, str)]
            if isinstance(p.get("securityGroupRuleIds"), list)
            else []
        )
        changes += [_change(i, grant, not grant, "rule_id") for i in ids if isinstance(i, str)]
        return changes, (_sg_rule_paths(r) if grant else {})

    return observe


def _flag(path: str, value: bool) -> Observer:
    return lambda p, r: ([_change(path, value, not value)], {})


def _value(path: str, *keys: str, strip: tuple[str, ...] = ()) -> Observer:
    """The request's value under `keys` (or the whole request minus `strip`), prior unknown."""

    def observe(p: dict[str, Any], r: Any) -> tuple[list[Change], dict[str, str]]:
        if keys:
            for key in keys:
                if key in p:
                    return [_change(path, p[key])], {}
            return [], {}
        return [_change(path, {k: v for k, v in sorted(p.items()) if k not in strip})], {}

    return observe


def _removed(path: str) -> Observer:
    return lambda p, r: ([_change(path, None)], {})


def _keyed(prefix: str, key: str, value: Any, prior: Any = _UNKNOWN, field: str = "") -> Observer:
    """`<prefix>[<request[key]>]` = `value`, or the request's `field` when given."""

    def observe(p: dict[str, Any], r: Any) -> tuple[list[Change], dict[str, str]]:
        name = p.get(key)
        if not isinstance(name, str) or not name:
            return [], {}
        observed = p.get(field) if field else value
        return [_change(f"{prefix}[{name}]", observed, prior)], {}

    return observe


def _snapshot(p: dict[str, Any], r: Any) -> tuple[list[Change], dict[str, str]]:
    changes: list[Change] = []
    for change, granted in (("add", True), ("remove", False)):
        for item in _items(p, "createVolumePermission", change, "items"):
            who = item.get("userId") or item.get("group")
            if isinstance(who, str):
                changes.append(_change(f"create_volume_permission[{who}]", granted, not granted))
    return changes, {}


def _access_key(status: Any) -> Observer:
    def observe(p: dict[str, Any], r: Any) -> tuple[list[Change], dict[str, str]]:
        key = dig(r, "accessKey", "accessKeyId") or p.get("accessKeyId")
        if not isinstance(key, str):
            return [], {}
        observed = p.get("status") if status == "request" else status
        prior = None if status == "Active" else _UNKNOWN
        return [_change(f"access_keys[{key}]", observed, prior)], {}

    return observe


#: CloudTrail eventName -> its observer. Only management calls that change security posture.
OBSERVERS: dict[str, Observer] = {
    # EC2 security groups
    "AuthorizeSecurityGroupIngress": _sg("ingress", True),
    "RevokeSecurityGroupIngress": _sg("ingress", False),
    "AuthorizeSecurityGroupEgress": _sg("egress", True),
    "RevokeSecurityGroupEgress": _sg("egress", False),
    "CreateSecurityGroup": _flag("present", True),
    "DeleteSecurityGroup": _flag("present", False),
    # EBS
    "ModifySnapshotAttribute": _snapshot,
    "EnableEbsEncryptionByDefault": _flag("ebs_encryption_by_default", True),
    "DisableEbsEncryptionByDefault": _flag("ebs_encryption_by_default", False),
    # S3
    "PutBucketPolicy": _value("policy", "bucketPolicy"),
    "DeleteBucketPolicy": _removed("policy"),
    "PutBucketAcl": _value("acl", strip=("bucketName", "Host", "acl")),
    "PutPublicAccessBlock": _value("public_access_block", "PublicAccessBlockConfiguration"),
    "DeletePublicAccessBlock": _removed("public_access_block"),
    "PutBucketEncryption": _value("encryption", "ServerSideEncryptionConfiguration"),
    "DeleteBucketEncryption": _removed("encryption"),
    "PutBucketVersioning": _value("versioning", "VersioningConfiguration"),
    "PutBucketLogging": _value("logging", "BucketLoggingStatus"),
    # IAM
    "CreateUser": _flag("present", True),
    "DeleteUser": _flag("present", False),
    "CreateRole": _flag("present", True),
    "DeleteRole": _flag("present", False),
    "CreateLoginProfile": _flag("login_profile", True),
    "DeleteLoginProfile": _flag("login_profile", False),
    "CreateAccessKey": _access_key("Active"),
    "UpdateAccessKey": _access_key("request"),
    "DeleteAccessKey": _access_key(None),
    "AttachUserPolicy": _keyed("attached_policies", "policyArn", True, False),
    "AttachRolePolicy": _keyed("attached_policies", "policyArn", True, False),
    "AttachGroupPolicy": _keyed("attached_policies", "policyArn", True, False),
    "DetachUserPolicy": _keyed("attached_policies", "policyArn", False, True),
    "DetachRolePolicy": _keyed("attached_policies", "policyArn", False, True),
    "DetachGroupPolicy": _keyed("attached_policies", "policyArn", False, True),
    "PutUserPolicy": _keyed("inline_policies", "policyName", None, field="policyDocument"),
    "PutRolePolicy": _keyed("inline_policies", "policyName", None, field="policyDocument"),
    "PutGroupPolicy": _keyed("inline_policies", "policyName", None, field="policyDocument"),
    "DeleteUserPolicy": _keyed("inline_policies", "policyName", None),
    "DeleteRolePolicy": _keyed("inline_policies", "policyName", None),
    "DeleteGroupPolicy": _keyed("inline_policies", "policyName", None),
    "UpdateAssumeRolePolicy": _value("trust_policy", "policyDocument"),
    # CloudTrail
    "StopLogging": _flag("logging", False),
    "StartLogging": _flag("logging", True),
    "DeleteTrail": _flag("present", False),
    "CreateTrail": _flag("present", True),
    "UpdateTrail": _value("settings", strip=("name", "trailName")),
    "PutEventSelectors": _value("event_selectors", "eventSelectors", "advancedEventSelectors"),
    # AWS Config, GuardDuty, Organizations
    "StopConfigurationRecorder": _flag("recording", False),
    "StartConfigurationRecorder": _flag("recording", True),
    "DeleteConfigurationRecorder": _flag("present", False),
    "DeleteDetector": _flag("present", False),
    "CreateDetector": _flag("present", True),
    "LeaveOrganization": _flag("organization_member", False),
    # KMS
    "DisableKey": _flag("enabled", False),
    "EnableKey": _flag("enabled", True),
    "ScheduleKeyDeletion": _flag("pending_deletion", True),
    "CancelKeyDeletion": _flag("pending_deletion", False),
    "DisableKeyRotation": _flag("rotation", False),
    "EnableKeyRotation": _flag("rotation", True),
    "PutKeyPolicy": _value("policy", "policy"),
}
