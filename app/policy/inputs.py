"""The three input shapes, each its ecosystem's convention, built from a canonical event.

- `terraform` (conftest): `input` is plan JSON. From a `tf_change` event, a plan holding that
  one resource change (`resource_changes[0]` with `address`, `type`, `name`, `mode`, `index`,
  `provider_name`, `module_address`, `change.actions|before|after`), so a policy that walks
  `input.resource_changes` runs unmodified and each violation belongs to its resource.
- `kubernetes` (Gatekeeper): `input.review` is an AdmissionReview request built from an audit
  event of a `create` / `update` that carried the object (`request_object`): `kind`
  (group/version/kind), `operation`, `name`, `namespace`, `object`, `userInfo`; and
  `input.parameters` is the Constraint's `spec.parameters`.
- `event`: `input` is the canonical event (`type`, `source`, `entity`, `attributes`, ...).
"""

from __future__ import annotations

from typing import Any

#: Audit verbs whose request object is the whole object (a patch holds only the change).
REVIEWED_VERBS = {"create": "CREATE", "update": "UPDATE"}


def terraform_input(event: dict[str, Any]) -> dict[str, Any] | None:
    """A one-resource plan from a `tf_change` event dict (None for other events)."""
    if event.get("type") != "tf_change":
        return None
    a = event.get("attributes") or {}
    change = {"actions": a.get("actions") or [], "before": a.get("before"), "after": a.get("after")}
    resource = {
        "address": a.get("address"),
        "mode": a.get("mode"),
        "type": a.get("resource_type"),
        "name": a.get("resource_name"),
        "provider_name": a.get("provider_name"),
        "change": change,
    }
    for name in ("index", "module_address"):
        if a.get(name) is not None:
            resource[name] = a[name]
    return {
        "format_version": a.get("format_version"),
        "terraform_version": a.get("terraform_version"),
        "resource_changes": [resource],
    }


def admission_review(event: dict[str, Any]) -> dict[str, Any] | None:
    """Gatekeeper's `input.review` from a `k8s_audit` event dict, None when it has no object."""
    if event.get("type") != "k8s_audit":
        return None
    a = event.get("attributes") or {}
    operation = REVIEWED_VERBS.get(a.get("verb") or "")
    obj = a.get("request_object")
    if operation is None or not isinstance(obj, dict) or a.get("subresource"):
        return None
    return review_of(obj, operation, a.get("username"), a.get("groups") or [], a.get("api_group"))


def review_of(
    obj: dict[str, Any],
    operation: str = "CREATE",
    username: str | None = None,
    groups: list[str] | None = None,
    api_group: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview request for `obj` (also what `vigil policy eval` gives a manifest)."""
    api_version = obj.get("apiVersion") if isinstance(obj.get("apiVersion"), str) else "v1"
    group, _, version = api_version.rpartition("/")
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return {
        "kind": {"group": group or api_group or "", "version": version, "kind": obj.get("kind")},
        "operation": operation,
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "object": obj,
        "userInfo": {"username": username, "groups": list(groups or [])},
    }
