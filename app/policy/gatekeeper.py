"""Gatekeeper ConstraintTemplates and Constraints, read from YAML and matched to objects.

A template (`templates.gatekeeper.sh/v1` or `v1beta1`, kind `ConstraintTemplate`) gives the
constraint kind (`spec.crd.spec.names.kind`) and the Rego of its `admission.k8s.gatekeeper.sh`
target: `rego` plus `libs`, or `code[]` with `engine: Rego` and `source.rego` / `source.libs`.
A Constraint (`constraints.gatekeeper.sh/*`, kind = the template's kind) instantiates it:
`spec.match` (`kinds`, `namespaces`, `excludedNamespaces`, `scope`, `labelSelector.matchLabels`;
the other selectors are load errors), `spec.parameters` (`input.parameters`), and Vigil's
mapping in `metadata.annotations`: `vigil.dev/controls` (`fw:id,id;fw:id`, the alert label's
format), `vigil.dev/severity`, `vigil.dev/title`, `vigil.dev/approximate` (comma list).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from app.policy.metadata import known_fields

TEMPLATE_KIND = "ConstraintTemplate"
TEMPLATE_GROUP = "templates.gatekeeper.sh/"
CONSTRAINT_GROUP = "constraints.gatekeeper.sh/"
ADMISSION_TARGET = "admission.k8s.gatekeeper.sh"
MATCH_FIELDS = frozenset({"kinds", "namespaces", "excludedNamespaces", "scope", "labelSelector"})
ANNOTATION = "vigil.dev/"


class GatekeeperError(ValueError):
    """A template or constraint that cannot be used; the message names the object."""


@dataclass(frozen=True, slots=True)
class Template:
    """A ConstraintTemplate: its constraint kind and Rego sources (main module first)."""

    name: str
    kind: str
    rego: tuple[str, ...]
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Constraint:
    """A Constraint: which objects it reviews and with which parameters."""

    name: str
    kind: str
    kinds: tuple[tuple[frozenset[str], frozenset[str]], ...]
    namespaces: tuple[str, ...] = ()
    excluded_namespaces: tuple[str, ...] = ()
    scope: str = "*"
    match_labels: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    enforcement_action: str = "deny"

    def matches(self, review: dict[str, Any]) -> bool:
        """Gatekeeper's match semantics for the fields Vigil supports."""
        kind = review.get("kind") or {}
        if self.kinds and not any(
            _glob(groups, kind.get("group") or "") and _glob(kinds, kind.get("kind") or "")
            for groups, kinds in self.kinds
        ):
            return False
        namespace = review.get("namespace")
        if self.scope != "*" and (self.scope == "Namespaced") != bool(namespace):
            return False
        if self.namespaces and not _in_namespaces(namespace, self.namespaces):
            return False
        if self.excluded_namespaces and _in_namespaces(namespace, self.excluded_namespaces):
            return False
        if self.match_labels:
            labels = ((review.get("object") or {}).get("metadata") or {}).get("labels") or {}
            return all(labels.get(k) == v for k, v in self.match_labels.items())
        return True


def _glob(allowed: frozenset[str], value: str) -> bool:
    return "*" in allowed or value in allowed


def _in_namespaces(namespace: str | None, patterns: tuple[str, ...]) -> bool:
    return namespace is not None and any(fnmatch.fnmatchcase(namespace, p) for p in patterns)


def is_template(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and doc.get("kind") == TEMPLATE_KIND
        and str(doc.get("apiVersion", "")).startswith(TEMPLATE_GROUP)
    )


def is_constraint(doc: Any) -> bool:
    return isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith(CONSTRAINT_GROUP)


def _name(doc: dict[str, Any], what: str) -> str:
    name = (doc.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise GatekeeperError(f"{what} without metadata.name")
    return name


def _annotations(doc: dict[str, Any]) -> dict[str, str]:
    raw = (doc.get("metadata") or {}).get("annotations") or {}
    return {k: str(v) for k, v in raw.items() if isinstance(k, str)}


def parse_template(doc: dict[str, Any]) -> Template:
    """A ConstraintTemplate's kind and Rego; GatekeeperError when it has no Rego target."""
    name = _name(doc, TEMPLATE_KIND)
    label = f"ConstraintTemplate '{name}'"
    spec = doc.get("spec") or {}
    kind = (((spec.get("crd") or {}).get("spec") or {}).get("names") or {}).get("kind")
    if not isinstance(kind, str) or not kind:
        raise GatekeeperError(f"{label}: missing spec.crd.spec.names.kind")
    targets = [t for t in spec.get("targets") or [] if isinstance(t, dict)]
    target = next((t for t in targets if t.get("target") == ADMISSION_TARGET), None)
    if target is None:
        raise GatekeeperError(f"{label}: no '{ADMISSION_TARGET}' target")
    sources: list[Any] = []
    if target.get("rego"):
        sources = [target["rego"], *(target.get("libs") or [])]
    for code in target.get("code") or []:
        if isinstance(code, dict) and code.get("engine") == "Rego" and not sources:
            source = code.get("source") or {}
            sources = [source.get("rego"), *(source.get("libs") or [])]
    if not sources or not all(isinstance(s, str) and s.strip() for s in sources):
        raise GatekeeperError(f"{label}: no Rego (targets[].rego or code[] with engine Rego)")
    return Template(name, kind, tuple(sources), _annotations(doc))


def parse_constraint(doc: dict[str, Any]) -> Constraint:
    """A Constraint; GatekeeperError names the field Vigil cannot honour."""
    name = _name(doc, "Constraint")
    label = f"{doc.get('kind')} '{name}'"
    spec = doc.get("spec") or {}
    match = known_fields(
        spec.get("match") or {}, MATCH_FIELDS, f"{label}: spec.match", GatekeeperError
    )
    selector = match.get("labelSelector") or {}
    if set(selector) - {"matchLabels"}:
        raise GatekeeperError(f"{label}: only labelSelector.matchLabels is supported")
    kinds = []
    for entry in match.get("kinds") or []:
        if not isinstance(entry, dict):
            raise GatekeeperError(f"{label}: spec.match.kinds holds mappings")
        groups = frozenset(str(g) for g in entry.get("apiGroups") or ["*"])
        kinds.append((groups, frozenset(str(k) for k in entry.get("kinds") or ["*"])))
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise GatekeeperError(f"{label}: spec.parameters must be a mapping")
    return Constraint(
        name=name,
        kind=str(doc.get("kind")),
        kinds=tuple(kinds),
        namespaces=tuple(str(n) for n in match.get("namespaces") or []),
        excluded_namespaces=tuple(str(n) for n in match.get("excludedNamespaces") or []),
        scope=str(match.get("scope") or "*"),
        match_labels={str(k): str(v) for k, v in (selector.get("matchLabels") or {}).items()},
        parameters=parameters,
        annotations=_annotations(doc),
        enforcement_action=str(spec.get("enforcementAction") or "deny"),
    )


def constraint_metadata(constraint: Constraint, template: Template) -> dict[str, Any]:
    """`custom:`-style fields from the constraint's (then the template's) `vigil.dev/` keys."""
    notes = {**template.annotations, **constraint.annotations}
    custom: dict[str, Any] = {}
    if f"{ANNOTATION}controls" in notes:
        custom["controls"] = parse_controls_label(notes[f"{ANNOTATION}controls"])
    if f"{ANNOTATION}severity" in notes:
        custom["severity"] = notes[f"{ANNOTATION}severity"]
    if f"{ANNOTATION}approximate" in notes:
        custom["approximate"] = [
            s.strip() for s in notes[f"{ANNOTATION}approximate"].split(",") if s.strip()
        ]
    title = notes.get(f"{ANNOTATION}title") or notes.get("metadata.gatekeeper.sh/title")
    if title:
        custom["title"] = title
    return custom


def parse_controls_label(text: str) -> dict[str, list[str]]:
    """`fw:id,id;fw:id` (the `controls` alert label) as a mapping."""
    out: dict[str, list[str]] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        framework, sep, ids = part.partition(":")
        if not sep or not ids.strip():
            raise GatekeeperError(f"controls {text!r}: expected 'framework:id,id;framework:id'")
        out[framework.strip()] = [i.strip() for i in ids.split(",") if i.strip()]
    return out
