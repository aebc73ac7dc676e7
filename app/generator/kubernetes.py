"""Kubernetes audit events (audit.k8s.io/v1, stage ResponseComplete): routine controller and
developer traffic, people exec-ing into pods, now and then a privileged pod or a cluster-admin
binding, and bursts of 403s from one user probing what it may not read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from app.generator.fleet import (
    DEVELOPERS,
    EXEC_SERVICES,
    IMAGES,
    NAMESPACE,
    PODS,
    SERVICES,
    new_pod_name,
)
from app.generator.source import Source

KUBECTL = "kubectl/v1.29.2 (linux/amd64) kubernetes/4b8e819"
ARGOCD = "system:serviceaccount:argocd:argocd-application-controller"
RS_CONTROLLER = "system:serviceaccount:kube-system:replicaset-controller"
SA_GROUPS = ["system:serviceaccounts", "system:authenticated"]
HUMAN_GROUPS = ["oidc:developers", "system:authenticated"]
#: (resource, apiGroup, apiVersion) for objectRef and the request URI.
K8S_RESOURCES = {
    "pods": ("", "v1"),
    "secrets": ("", "v1"),
    "configmaps": ("", "v1"),
    "deployments": ("apps", "v1"),
    "clusterrolebindings": ("rbac.authorization.k8s.io", "v1"),
}


@dataclass(eq=False)
class KubernetesAudit(Source):
    """Audit events; `forbidden_left` counts what remains of a 403 burst."""

    forbidden_left: int = field(default=0, init=False)
    _forbidden_user: str = field(default="", init=False)

    def event(self, ts_ms: int) -> bytes:
        """Routine API traffic; now and then a privileged pod or a cluster-admin binding."""
        rnd = self.rnd
        if self.forbidden_left > 0:
            return self.forbidden(ts_ms)
        if rnd.random() < 0.004:
            self.forbidden_left = rnd.randint(15, 40)
            self._forbidden_user = rnd.choice(
                ("oidc:intern-jo", "system:serviceaccount:ci:deployer", "oidc:contractor-7")
            )
            return self.forbidden(ts_ms)
        service = rnd.choice(SERVICES)
        r = rnd.random()
        if r < 0.30:
            return self._audit(ts_ms, "list", RS_CONTROLLER, SA_GROUPS, "pods", None)
        if r < 0.52:
            return self._audit(ts_ms, "get", ARGOCD, SA_GROUPS, "deployments", service)
        if r < 0.62:
            body = {"spec": {"template": {"spec": {"containers": [self._container(service)]}}}}
            return self._audit(ts_ms, "patch", ARGOCD, SA_GROUPS, "deployments", service, body)
        if r < 0.70:
            pod = {
                "kind": "Pod",
                "apiVersion": "v1",
                "metadata": {"name": new_pod_name(service, rnd)},
            }
            pod["spec"] = {"containers": [self._container(service)], "serviceAccountName": service}
            return self._audit(ts_ms, "create", RS_CONTROLLER, SA_GROUPS, "pods", None, pod)
        if r < 0.78:
            user = f"system:serviceaccount:{NAMESPACE}:{service}"
            return self._audit(ts_ms, "get", user, SA_GROUPS, "secrets", f"{service}-db")
        if r < 0.94:
            user, verb = f"oidc:{rnd.choice(DEVELOPERS)}", rnd.choice(("get", "list"))
            name = PODS[service][0]["name"] if verb == "get" else None
            return self._audit(ts_ms, verb, user, HUMAN_GROUPS, "pods", name, ua=KUBECTL)
        if r < 0.99:
            service = rnd.choice(EXEC_SERVICES)
            user, name = f"oidc:{rnd.choice(DEVELOPERS)}", PODS[service][1]["name"]
            return self._audit(
                ts_ms, "create", user, HUMAN_GROUPS, "pods", name, sub="exec", ua=KUBECTL
            )
        if r < 0.996:
            return self._privileged_pod(ts_ms)
        return self._cluster_admin_binding(ts_ms)

    def forbidden(self, ts_ms: int) -> bytes:
        """One request of a 403 burst: one user probing secrets and pods it may not read."""
        self.forbidden_left -= 1
        rnd = self.rnd
        resource = rnd.choice(("secrets", "secrets", "pods", "configmaps"))
        namespace = rnd.choice((NAMESPACE, "kube-system", "monitoring", "argocd"))
        verb = rnd.choice(("list", "get", "list"))
        name = None if verb == "list" else rnd.choice(("db-credentials", "tls", "admin-token"))
        user = self._forbidden_user
        groups = SA_GROUPS if user.startswith("system:") else HUMAN_GROUPS
        return self._audit(
            ts_ms, verb, user, groups, resource, name, ns=namespace, code=403, ua=KUBECTL
        )

    def _privileged_pod(self, ts_ms: int) -> bytes:
        name = f"debug-{self.rnd.getrandbits(20):05x}"
        pod = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "hostPID": True,
                "containers": [
                    {
                        "name": "debug",
                        "image": "docker.io/library/alpine:3.19",
                        "command": ["sleep", "infinity"],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"name": "host", "mountPath": "/host"}],
                    }
                ],
                "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
            },
        }
        user = f"oidc:{self.rnd.choice(DEVELOPERS)}"
        return self._audit(ts_ms, "create", user, HUMAN_GROUPS, "pods", None, pod, ua=KUBECTL)

    def _cluster_admin_binding(self, ts_ms: int) -> bytes:
        user = f"oidc:{self.rnd.choice(DEVELOPERS)}"
        binding = {
            "kind": "ClusterRoleBinding",
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": f"{user[5:]}-admin"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
        }
        return self._audit(
            ts_ms, "create", user, HUMAN_GROUPS, "clusterrolebindings", None, binding, ua=KUBECTL
        )

    def _audit(
        self,
        ts_ms: int,
        verb: str,
        user: str,
        groups: list[str],
        resource: str,
        name: str | None,
        request: dict[str, Any] | None = None,
        *,
        sub: str | None = None,
        ns: str | None = NAMESPACE,
        code: int | None = None,
        ua: str = "kube-controller-manager/v1.29.2 (linux/amd64) kubernetes/4b8e819",
    ) -> bytes:
        """One audit.k8s.io/v1 Event at stage ResponseComplete."""
        group, version = K8S_RESOURCES[resource]
        if resource == "clusterrolebindings":
            ns = None
        code = code or (201 if verb == "create" else 200)
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        uri = prefix + (f"/namespaces/{ns}" if ns else "") + f"/{resource}"
        uri += (f"/{name}" if name else "") + (f"/{sub}" if sub else "")
        ref: dict[str, Any] = {"resource": resource}
        if ns:
            ref["namespace"] = ns
        if name:
            ref["name"] = name
        if sub:
            ref["subresource"] = sub
        ref.update({"apiGroup": group, "apiVersion": version} if group else {"apiVersion": version})
        status: dict[str, Any] = {"metadata": {}, "code": code}
        if code == 403:
            what = f'{resource} "{name}"' if name else resource
            status.update(
                status="Failure",
                reason="Forbidden",
                message=f'{what} is forbidden: User "{user}" cannot {verb} resource '
                f'"{resource}" in API group "{group}" in the namespace "{ns}"',
            )
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "RequestResponse" if request else "Metadata",
            "auditID": self.uuid(),
            "stage": "ResponseComplete",
            "requestURI": uri,
            "verb": verb,
            "user": {"username": user, "groups": groups},
            "sourceIPs": ["10.0.12.7" if ua == KUBECTL else "10.0.0.15"],
            "userAgent": ua,
            "objectRef": ref,
            "responseStatus": status,
        }
        if request:
            event["requestObject"] = request
        event["requestReceivedTimestamp"] = self.clock.micros(ts_ms - 3)
        event["stageTimestamp"] = self.clock.micros(ts_ms)
        allowed = code < 400
        event["annotations"] = {
            "authorization.k8s.io/decision": "allow" if allowed else "forbid",
            "authorization.k8s.io/reason": f'RBAC: allowed by ClusterRoleBinding "{groups[0]}"'
            if allowed
            else "",
        }
        return orjson.dumps(event)

    def _container(self, service: str) -> dict[str, Any]:
        """The container of `service` in its pod spec, running its production image."""
        return {
            "name": service,
            "image": f"{IMAGES[service]}:{self.releases.version(service)}",
            "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
            "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
        }
