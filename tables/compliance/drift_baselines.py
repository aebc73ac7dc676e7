"""Baselines: the desired state declared per resource (format in docs/drift.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from app.model.paths import flatten

#: spec_summary fields a Kubernetes baseline may declare (plus `image`, `present`, `content`).
K8S_SUMMARY_FIELDS: tuple[str, ...] = (
    "containers",
    "images",
    "privileged",
    "allow_privilege_escalation",
    "capabilities_added",
    "host_network",
    "host_pid",
    "host_ipc",
    "host_paths",
    "run_as_user",
    "run_as_non_root",
    "resource_limits",
    "service_account",
    "replicas",
)
K8S_FIELDS: frozenset[str] = frozenset({*K8S_SUMMARY_FIELDS, "image", "present", "content"})


class BaselineError(ValueError):
    """A baseline file that cannot be loaded; the message names the entry and field."""


def load_baselines(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a baseline file: entity -> {path: desired value} (format in docs/drift.md)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"{path}: cannot read baselines: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BaselineError(f"{path}: not valid YAML: {exc}") from None
    return parse_baselines(doc, str(path))


def parse_baselines(doc: Any, where: str = "baselines") -> dict[str, dict[str, Any]]:
    """Validate decoded baselines: a list (or `{baselines: [...]}`) of `{resource, spec}`.

    Kubernetes specs use spec_summary field names (K8S_FIELDS); Terraform specs are nested
    like `after` and flattened to dotted paths; AWS specs are attribute paths as Vigil writes
    them (`logging`, `ingress[tcp:22-22:0.0.0.0/0]`, ...). `present` defaults to true.
    """
    if isinstance(doc, dict) and "baselines" in doc:
        doc = doc["baselines"]
    if doc is None:
        return {}
    if not isinstance(doc, list):
        raise BaselineError(f"{where}: expected a list of {{resource, spec}} entries")
    out: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(doc):
        label = f"{where}: entry #{index + 1}"
        if not isinstance(entry, dict):
            raise BaselineError(f"{label}: an entry is a mapping with 'resource' and 'spec'")
        for name in ("resource", "spec"):
            if name not in entry:
                raise BaselineError(f"{label}: missing field '{name}'")
        unknown = sorted(set(entry) - {"resource", "spec", "description", "owner"})
        if unknown:
            raise BaselineError(f"{label}: unknown field '{unknown[0]}'")
        resource, spec = entry["resource"], entry["spec"]
        if not isinstance(resource, str) or ":" not in resource:
            raise BaselineError(f"{label}: 'resource' is an entity such as k8s:ns/deployments/x")
        label = f"{where}: '{resource}'"
        if resource in out:
            raise BaselineError(f"{label}: duplicate resource")
        if not isinstance(spec, dict) or not spec:
            raise BaselineError(f"{label}: 'spec' must be a non-empty mapping")
        kind = resource.split(":", 1)[0]
        if kind == "k8s":
            unknown = sorted(set(spec) - K8S_FIELDS)
            if unknown:
                raise BaselineError(
                    f"{label}: unknown Kubernetes field '{unknown[0]}' "
                    f"(known: {', '.join(sorted(K8S_FIELDS))})"
                )
            flat = {k: _k8s_normal(k, v) for k, v in spec.items()}
        elif kind == "tf":
            flat = dict(flatten(spec))
        else:
            flat = dict(spec)
        flat.setdefault("present", True)
        out[resource] = flat
    return out


def _k8s_normal(name: str, value: Any) -> Any:
    """Lists compare as spec_summary writes them (sorted)."""
    if name in ("images", "host_paths", "run_as_user", "capabilities_added") and isinstance(
        value, list
    ):
        return sorted(value)
    return value
