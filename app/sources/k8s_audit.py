"""Kubernetes API server audit events (`audit.k8s.io/v1`, also `v1beta1` and unversioned).

Source of truth: the `audit.k8s.io/v1` Event type (k8s.io/apiserver/pkg/apis/audit/v1/types.go;
REFERENCE.md): `auditID`, `level`, `stage`, `verb`, `user`, `impersonatedUser`, `sourceIPs`,
`userAgent`, `objectRef{resource, subresource, namespace, name, apiGroup, apiVersion}`,
`responseStatus{code}`, `requestObject`, `responseObject`, `requestReceivedTimestamp`,
`stageTimestamp`, `annotations`. A record is one Event (log backend, one per line) or an
`EventList` (webhook backend batch), which gives one event per item. Older `v1beta1` events
carry `timestamp`, used when the v1 timestamps are missing.

`resource_class` says what kind of configuration the object is: `workload` (it embeds a pod
spec), `rbac` (roles, role bindings and their cluster-wide forms) or `network_policy`; absent
for anything else.

A `create` or `update` keeps the object it wrote as `request_object` (not for Secrets, at most
`MAX_OBJECT_BYTES`), the document Gatekeeper-style policies review (app/policy/inputs.py).

Identity: `auditID` + `stage` (one request is logged once per stage). Hand-edited samples that
reuse an auditID therefore share an id, as replays of the same audit event should.

Severity (the highest rule that applies; the reasons are listed in `risk_reasons`):
- high: a privileged container, `hostPID`, or a hostPath of a node-takeover path (`/`, `/etc`,
  `/proc`, `/root`, `/var/lib/kubelet`, container runtime sockets) in a pod spec written by
  the request; a (cluster)rolebinding write whose roleRef is `cluster-admin`.
- medium: writes to roles, rolebindings, clusterroles, clusterrolebindings; get/list/watch on
  secrets; pods/exec, pods/attach, pods/portforward; `hostNetwork`, `hostIPC`, other hostPaths
  or added capabilities in a written pod spec; an allowed request by `system:anonymous`.
- low: any request denied with 401/403 (or `authorization.k8s.io/decision: forbid`), whatever
  it attempted: it changed nothing, and patterns of denials are for later stages to judge.
- info: everything else.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.model.events import Event, event_id, max_severity, parse_time
from app.model.paths import dig
from app.sources.base import check_time_range, optional, require, require_object
from app.sources.errors import ErrorCode, NormalizeError

STAGES = frozenset({"RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"})
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
READ_VERBS = frozenset({"get", "list", "watch"})
RBAC_RESOURCES = frozenset({"roles", "rolebindings", "clusterroles", "clusterrolebindings"})
SHELL_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
#: Largest request object an event keeps as `request_object` (create/update, not Secrets).
MAX_OBJECT_BYTES = 16_384
#: Resources whose request object embeds a pod spec, and where that spec sits.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "pods": ("spec",),
    "podtemplates": ("template", "spec"),
    "deployments": ("spec", "template", "spec"),
    "replicasets": ("spec", "template", "spec"),
    "replicationcontrollers": ("spec", "template", "spec"),
    "statefulsets": ("spec", "template", "spec"),
    "daemonsets": ("spec", "template", "spec"),
    "jobs": ("spec", "template", "spec"),
    "cronjobs": ("spec", "jobTemplate", "spec", "template", "spec"),
}
#: hostPath mounts that hand a container the node (files, kubelet credentials, runtime socket).
SENSITIVE_HOST_PATHS = frozenset(
    {
        "/",
        "/etc",
        "/proc",
        "/root",
        "/var/lib/kubelet",
        "/var/run/docker.sock",
        "/run/containerd/containerd.sock",
        "/var/run/containerd/containerd.sock",
        "/var/run/crio/crio.sock",
    }
)
TIME_FIELDS = ("stageTimestamp", "requestReceivedTimestamp", "timestamp")


class K8sAuditAdapter:
    """One `k8s_audit` event per audit Event, keyed by the object it acted on."""

    name = "k8s-audit"
    family = "k8s-audit"

    def matches(self, doc: Any) -> bool:
        if not isinstance(doc, dict):
            return False
        api_version = doc.get("apiVersion")
        if api_version is not None and not str(api_version).startswith("audit.k8s.io/"):
            return False
        if doc.get("kind") == "EventList":
            return isinstance(doc.get("items"), list)
        return "auditID" in doc and "stage" in doc and doc.get("kind", "Event") == "Event"

    def normalize(self, doc: Any, raw: bytes) -> list[Event]:
        record = require_object(doc, "Kubernetes audit event")
        if record.get("kind") != "EventList":
            return [self._event(record)]
        items = require(record, "items", list)
        if not items:
            raise NormalizeError(ErrorCode.EMPTY, "audit EventList has no items")
        events = []
        for index, item in enumerate(items):
            events.append(self._event(require_object(item, f"items[{index}]")))
        return events

    def _event(self, record: dict[str, Any]) -> Event:
        audit_id = require(record, "auditID", str)
        stage = require(record, "stage", str)
        if stage not in STAGES:
            raise NormalizeError(ErrorCode.INVALID_VALUE, f"unknown audit stage {stage!r}")
        verb = require(record, "verb", str)
        ts_ms = _event_time(record)
        ref = optional(record, "objectRef", dict, {})
        user = optional(record, "user", dict, {})
        code = optional(record, "responseStatus.code", int)
        annotations = optional(record, "annotations", dict, {})
        request_uri = optional(record, "requestURI", str)
        resource = optional(ref, "resource", str)
        subresource = optional(ref, "subresource", str)
        namespace = optional(ref, "namespace", str)
        if resource == "namespaces":
            namespace = None  # a namespace is cluster-scoped, though objectRef names itself
        name = optional(ref, "name", str) or _object_name(record)
        username = optional(user, "username", str)
        decision = _decision(annotations.get("authorization.k8s.io/decision"), code)
        spec_summary = _spec_summary(resource, record.get("requestObject"))
        severity, reasons = _assess(
            verb, resource, subresource, username, decision, spec_summary, record
        )
        if resource is not None:
            entity = f"k8s:{namespace or '_cluster'}/{resource}/{name or '*'}"
        else:  # a non-resource URL such as /healthz or /api
            path = (request_uri or "*").split("?", 1)[0].lstrip("/") or "*"
            entity = f"k8s:_cluster/_nonresource/{path}"
        attributes: dict[str, Any] = {
            "audit_id": audit_id,
            "level": optional(record, "level", str),
            "stage": stage,
            "verb": verb,
            "username": username,
            "groups": optional(user, "groups", list, []),
            "impersonated_user": optional(record, "impersonatedUser.username", str),
            "source_ips": optional(record, "sourceIPs", list, []),
            "user_agent": optional(record, "userAgent", str),
            "resource": resource,
            "subresource": subresource,
            "namespace": namespace,
            "name": name,
            "api_group": optional(ref, "apiGroup", str),
            "api_version": optional(ref, "apiVersion", str),
            "response_code": code,
            "decision": decision,
            "request_uri": request_uri,
            "audit_api_version": optional(record, "apiVersion", str),
            "risk_reasons": reasons,
        }
        reason = annotations.get("authorization.k8s.io/reason")
        if isinstance(reason, str) and reason:
            attributes["authorization_reason"] = reason
        resource_class = _resource_class(resource)
        if resource_class is not None:
            attributes["resource_class"] = resource_class
        if spec_summary is not None:
            attributes["spec_summary"] = spec_summary
        reviewed = _reviewed_object(verb, resource, subresource, stage, record)
        if reviewed is not None:
            attributes["request_object"] = reviewed
        return Event(
            id=event_id(self.name, audit_id, stage),
            source=self.name,
            type="k8s_audit",
            ts_ms=ts_ms,
            entity=entity,
            severity=severity,
            attributes=attributes,
        )


def _resource_class(resource: str | None) -> str | None:
    """`workload` (a pod spec inside, POD_SPEC_PATHS), `rbac`, `network_policy`, else None."""
    if resource in POD_SPEC_PATHS:
        return "workload"
    if resource in RBAC_RESOURCES:
        return "rbac"
    return "network_policy" if resource == "networkpolicies" else None


def _reviewed_object(
    verb: str, resource: str | None, subresource: str | None, stage: str, record: dict[str, Any]
) -> dict[str, Any] | None:
    """The object a create/update wrote (Gatekeeper-style policies review it, app/policy/),
    except Secrets and objects over `MAX_OBJECT_BYTES`; None otherwise."""
    obj = record.get("requestObject")
    if (
        verb not in ("create", "update")
        or subresource is not None
        or resource in ("secrets", None)
        or stage == "RequestReceived"
        or not isinstance(obj, dict)
        or len(orjson.dumps(obj)) > MAX_OBJECT_BYTES
    ):
        return None
    return obj


def _event_time(record: dict[str, Any]) -> int:
    """`stageTimestamp`, else `requestReceivedTimestamp`, else v1beta1's `timestamp`."""
    for path in TIME_FIELDS:
        value = record.get(path)
        if value is None:
            continue
        try:
            return check_time_range(parse_time(value), path)
        except ValueError:
            raise NormalizeError(
                ErrorCode.INVALID_VALUE, f"'{path}' is not a timestamp: {value!r}"
            ) from None
    raise NormalizeError(ErrorCode.MISSING_FIELD, "required field 'stageTimestamp' is missing")


def _object_name(record: dict[str, Any]) -> str | None:
    """The name of a created object (objectRef has none): request, else response metadata."""
    for key in ("requestObject", "responseObject"):
        obj = record.get(key)
        name = dig(obj, "metadata", "name")
        if isinstance(name, str) and name and dig(obj, "kind") != "DeleteOptions":
            return name
    return None


def _decision(annotation: Any, code: int | None) -> str | None:
    """ "allow" / "forbidden" from the authorizer's annotation, else from the response code."""
    if annotation == "allow":
        return "allow"
    if annotation == "forbid":
        return "forbidden"
    if code is None:
        return None
    return "forbidden" if code in (401, 403) else "allow"


def _assess(
    verb: str,
    resource: str | None,
    subresource: str | None,
    username: str | None,
    decision: str | None,
    spec: dict[str, Any] | None,
    record: dict[str, Any],
) -> tuple[str, list[str]]:
    """Severity and the reasons behind it (see the module docstring)."""
    reasons: list[str] = []
    severity = "info"

    def flag(reason: str, level: str) -> None:
        nonlocal severity
        reasons.append(reason)
        severity = max_severity(severity, level)

    if resource in RBAC_RESOURCES and verb in WRITE_VERBS:
        flag("rbac_write", "medium")
        role = dig(record.get("requestObject"), "roleRef", "name")
        if resource.endswith("rolebindings") and role == "cluster-admin" and verb != "delete":
            flag("cluster_admin_binding", "high")
    if resource == "secrets" and verb in READ_VERBS and subresource is None:
        flag("secret_read", "medium")
    if resource == "pods" and subresource in SHELL_SUBRESOURCES:
        flag(f"pod_{subresource}", "medium")
    if spec is not None:
        if spec["privileged"]:
            flag("privileged_container", "high")
        if spec["host_pid"]:
            flag("host_pid", "high")
        if any(path.rstrip("/") in SENSITIVE_HOST_PATHS for path in spec["host_paths"]):
            flag("sensitive_host_path", "high")
        elif spec["host_paths"]:
            flag("host_path", "medium")
        for key in ("host_network", "host_ipc"):
            if spec[key]:
                flag(key, "medium")
        if spec["capabilities_added"]:
            flag("capabilities_added", "medium")
    if username == "system:anonymous" and decision == "allow":
        flag("anonymous_allowed", "medium")
    if decision == "forbidden":
        reasons.append("forbidden")
        severity = "low"
    return severity, reasons


def _spec_summary(resource: str | None, obj: Any) -> dict[str, Any] | None:
    """Security-relevant extract of the pod spec a workload request carries (never the spec)."""
    path = POD_SPEC_PATHS.get(resource or "")
    if path is None:
        return None
    spec = dig(obj, *path)
    if not isinstance(spec, dict) or not isinstance(spec.get("containers"), list):
        return None
    containers = [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        if isinstance(spec.get(key), list)
        for c in spec[key]
        if isinstance(c, dict)
    ]
    contexts = [c.get("securityContext") or {} for c in containers]
    contexts = [sc if isinstance(sc, dict) else {} for sc in contexts]
    pod_context = spec.get("securityContext")
    pod_context = pod_context if isinstance(pod_context, dict) else {}
    users = {
        sc.get("runAsUser")
        for sc in [pod_context, *contexts]
        if isinstance(sc.get("runAsUser"), int) and not isinstance(sc.get("runAsUser"), bool)
    }
    added: set[str] = set()
    for sc in contexts:
        caps = dig(sc, "capabilities", "add")
        if isinstance(caps, list):
            added.update(cap for cap in caps if isinstance(cap, str))
    host_paths = {
        dig(volume, "hostPath", "path")
        for volume in (spec.get("volumes") if isinstance(spec.get("volumes"), list) else [])
        if isinstance(dig(volume, "hostPath", "path"), str)  # a list or object is unhashable
    }
    main = [c for c in spec["containers"] if isinstance(c, dict)]
    return {
        "containers": len(main),
        "images": sorted({c["image"] for c in containers if isinstance(c.get("image"), str)}),
        "privileged": any(sc.get("privileged") is True for sc in contexts),
        "allow_privilege_escalation": any(
            sc.get("allowPrivilegeEscalation") is True for sc in contexts
        ),
        "capabilities_added": sorted(added),
        "host_network": spec.get("hostNetwork") is True,
        "host_pid": spec.get("hostPID") is True,
        "host_ipc": spec.get("hostIPC") is True,
        "host_paths": sorted(p for p in host_paths if isinstance(p, str)),
        "run_as_user": sorted(u for u in users if isinstance(u, int) and not isinstance(u, bool)),
        "run_as_non_root": pod_context.get("runAsNonRoot") is True
        or (bool(contexts) and all(sc.get("runAsNonRoot") is True for sc in contexts)),
        "resource_limits": bool(main) and all(bool(dig(c, "resources", "limits")) for c in main),
        "service_account": spec.get("serviceAccountName")
        if isinstance(spec.get("serviceAccountName"), str)
        else None,
    }
