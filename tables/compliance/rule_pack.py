"""The compliance rule pack (`app/rules/compliance.yaml`, format in docs/drift.md): its rules
and their controls, loaded and validated once (`load_rule_pack`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from app.model.events import SEVERITIES, Event
from tables.compliance.conditions import Condition, ConditionError, compile_condition
from tables.compliance.rule_guards import RuleGuards, rule_guards

DAY_MS = 86_400_000
#: Posture of a rule without a `pass` condition fails this long after its last violation.
DEFAULT_WINDOW_DAYS = 30
#: Frameworks a pack may map to unless it declares its own `frameworks` section.
DEFAULT_FRAMEWORKS: dict[str, str] = {
    "nist-800-53-r5": "NIST SP 800-53 Rev. 5",
    "pci-dss-4.0": "PCI DSS v4.0",
    "cis-aws-1.4.0": "CIS Amazon Web Services Foundations Benchmark v1.4.0",
    "cis-k8s-1.8.0": "CIS Kubernetes Benchmark v1.8.0",
}
RULE_FIELDS = frozenset(
    {
        "id",
        "title",
        "description",
        "severity",
        "types",
        "sources",
        "match",
        "pass",
        "include_failed",
        "subject",
        "first_seen",
        "requires_prior",
        "controls",
        "approximate",
        "note",
        "tags",
        "window_days",
    }
)
REQUIRED_FIELDS = ("id", "title", "severity", "types", "match", "controls")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,80}$")


class RulePackError(ValueError):
    """A rule pack that cannot be loaded; the message names the rule and the field."""


@dataclass(frozen=True, slots=True)
class FirstSeen:
    """Per-entity memory of identities: `identity` paths (first non-empty wins)."""

    identity: tuple[str, ...]
    learning_ms: int
    max_identities: int


@dataclass(frozen=True, slots=True)
class RequiresPrior:
    """Per-entity memory of keys carried by earlier events that satisfy `match`."""

    types: frozenset[str]
    match: Condition
    key: str
    within_ms: int
    max_keys: int


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule of the pack."""

    id: str
    title: str
    severity: str
    types: frozenset[str]
    match: Condition
    controls: dict[str, tuple[str, ...]]
    description: str = ""
    sources: frozenset[str] | None = None
    pass_: Condition | None = None
    include_failed: bool = False
    subject: tuple[str, ...] = ()
    first_seen: FirstSeen | None = None
    requires_prior: RequiresPrior | None = None
    approximate: tuple[str, ...] = ()
    note: str = ""
    tags: tuple[str, ...] = ()
    #: How long a violation keeps the posture failing when nothing can show compliance
    #: (None: until a `pass` observation).
    window_ms: int | None = None
    #: A Rego policy's evaluation (tables/compliance/policy_rules.py) instead of `match` / `pass`:
    #: the violation messages for an event dict, () when compliant, None when not applicable.
    check: Callable[[dict[str, Any]], tuple[str, ...] | None] | None = None

    @property
    def stateful(self) -> bool:
        return self.first_seen is not None or self.requires_prior is not None

    def applies_to(self, event: Event) -> bool:
        return event.type in self.types and (self.sources is None or event.source in self.sources)

    def guards(self) -> dict[str, frozenset[str]]:
        """The field values the rule needs to fail or pass (tables/compliance/rule_guards.py);
        none for a Rego rule, whose conditions are not readable here."""
        if self.check is not None:
            return {}
        return rule_guards(self.match.spec, self.pass_.spec if self.pass_ is not None else None)

    def controls_label(self) -> str:
        """`fw:c1,c2;fw2:c3` in framework order: a stable alert label."""
        return ";".join(f"{fw}:{','.join(ids)}" for fw, ids in sorted(self.controls.items()))


@dataclass(frozen=True, slots=True)
class RulePack:
    """The loaded pack: rules in file order and an index by event type."""

    version: int
    frameworks: dict[str, str]
    rules: tuple[Rule, ...]
    by_type: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    prior_by_type: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    #: `by_type` with each rule's guards, to pick the rules an event can fail or pass.
    guarded_by_type: dict[str, RuleGuards] = field(default_factory=dict)

    def rules_for(self, event: Event, doc: Mapping[str, Any]) -> list[Rule]:
        """The rules of the event's type and source that can fail or pass it (`doc`: its
        dict), in pack order."""
        guarded = self.guarded_by_type.get(event.type)
        if guarded is None:
            return []
        return [rule for rule in guarded.candidates(doc) if rule.applies_to(event)]

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def default_pack_path() -> Path:
    """`app/rules/compliance.yaml` inside the installed package."""
    return Path(str(resources.files("app") / "rules" / "compliance.yaml"))


def load_rule_pack(path: str | Path | None = None) -> RulePack:
    """Load and validate a rule pack (the bundled one when `path` is None)."""
    if path is None:
        return _default_pack()
    return _load(Path(path))


@lru_cache(maxsize=1)
def _default_pack() -> RulePack:
    return _load(default_pack_path())


def _load(path: Path) -> RulePack:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulePackError(f"{path}: cannot read rule pack: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulePackError(f"{path}: not valid YAML: {exc}") from None
    return parse_rule_pack(doc, str(path))


def parse_rule_pack(doc: Any, where: str = "rule pack") -> RulePack:
    """Validate a decoded pack; RulePackError names the rule and the field at fault."""
    if not isinstance(doc, dict):
        raise RulePackError(f"{where}: a rule pack is a mapping with 'rules'")
    version = doc.get("version", 1)
    if version != 1:
        raise RulePackError(f"{where}: unsupported version {version!r} (expected 1)")
    frameworks = doc.get("frameworks", DEFAULT_FRAMEWORKS)
    if not isinstance(frameworks, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in frameworks.items()
    ):
        raise RulePackError(f"{where}: 'frameworks' maps framework ids to names")
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RulePackError(f"{where}: 'rules' must be a non-empty list")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, index, frameworks, where)
        if rule.id in seen:
            raise RulePackError(f"{where}: rule '{rule.id}' (#{index + 1}): duplicate id")
        seen.add(rule.id)
        rules.append(rule)
    return pack_of(rules, frameworks)


def pack_of(rules: Iterable[Rule], frameworks: Mapping[str, str]) -> RulePack:
    """A pack of `rules` (in order) with its indexes by event type."""
    rules = tuple(rules)
    by_type: dict[str, list[Rule]] = {}
    prior_by_type: dict[str, list[Rule]] = {}
    for rule in rules:
        for kind in sorted(rule.types):
            by_type.setdefault(kind, []).append(rule)
        if rule.requires_prior is not None:
            for kind in sorted(rule.requires_prior.types):
                prior_by_type.setdefault(kind, []).append(rule)
    return RulePack(
        version=1,
        frameworks=dict(frameworks),
        rules=rules,
        by_type={k: tuple(v) for k, v in by_type.items()},
        prior_by_type={k: tuple(v) for k, v in prior_by_type.items()},
        guarded_by_type={
            k: RuleGuards.of(tuple(v), [rule.guards() for rule in v]) for k, v in by_type.items()
        },
    )


def _parse_rule(raw: Any, index: int, frameworks: Mapping[str, str], where: str) -> Rule:
    label = f"{where}: rule #{index + 1}"
    if not isinstance(raw, dict):
        raise RulePackError(f"{label}: a rule is a mapping")
    if isinstance(raw.get("id"), str):
        label = f"{where}: rule '{raw['id']}' (#{index + 1})"
    for name in REQUIRED_FIELDS:
        if name not in raw or raw[name] in (None, "", [], {}):
            raise RulePackError(f"{label}: missing field '{name}'")
    unknown = sorted(set(raw) - RULE_FIELDS)
    if unknown:
        raise RulePackError(
            f"{label}: unknown field '{unknown[0]}' (known: {', '.join(sorted(RULE_FIELDS))})"
        )
    rule_id = raw["id"]
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
        raise RulePackError(f"{label}: 'id' must be lower-case letters, digits and dashes")
    if not isinstance(raw["title"], str):
        raise RulePackError(f"{label}: 'title' must be a string")
    severity = raw["severity"]
    if severity not in SEVERITIES:
        raise RulePackError(f"{label}: 'severity' must be one of {', '.join(SEVERITIES)}")
    types = _strings(raw["types"], f"{label}: 'types'")
    sources = (
        frozenset(_strings(raw["sources"], f"{label}: 'sources'")) if "sources" in raw else None
    )
    try:
        match = compile_condition(raw["match"], "match")
        pass_ = compile_condition(raw["pass"], "pass") if "pass" in raw else None
    except ConditionError as exc:
        raise RulePackError(f"{label}: {exc}") from None
    include_failed = raw.get("include_failed", False)
    if not isinstance(include_failed, bool):
        raise RulePackError(f"{label}: 'include_failed' must be true or false")
    subject = tuple(_paths(raw.get("subject", []), f"{label}: 'subject'"))
    controls = parse_controls(raw["controls"], frameworks, label)
    approximate = tuple(_strings(raw.get("approximate", []), f"{label}: 'approximate'", True))
    for fw in approximate:
        if fw not in controls:
            raise RulePackError(f"{label}: 'approximate' names '{fw}', which 'controls' lacks")
    first_seen = _first_seen(raw["first_seen"], label) if "first_seen" in raw else None
    requires_prior = (
        _requires_prior(raw["requires_prior"], label) if "requires_prior" in raw else None
    )
    if first_seen is not None and requires_prior is not None:
        raise RulePackError(f"{label}: 'first_seen' and 'requires_prior' exclude each other")
    for name in ("description", "note"):
        if not isinstance(raw.get(name, ""), str):
            raise RulePackError(f"{label}: '{name}' must be a string")
    window_ms: int | None = None
    if "window_days" in raw or pass_ is None:
        window_ms = _duration(raw, "window", label, DEFAULT_WINDOW_DAYS)
        if window_ms <= 0:
            raise RulePackError(f"{label}: 'window_days' must be positive")
    return Rule(
        id=rule_id,
        title=raw["title"],
        severity=severity,
        types=frozenset(types),
        match=match,
        controls=controls,
        description=raw.get("description", ""),
        sources=sources,
        pass_=pass_,
        include_failed=include_failed,
        subject=subject,
        first_seen=first_seen,
        requires_prior=requires_prior,
        approximate=approximate,
        note=raw.get("note", ""),
        tags=tuple(_strings(raw.get("tags", []), f"{label}: 'tags'", True)),
        window_ms=window_ms,
    )


def _strings(value: Any, what: str, allow_empty: bool = False) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or (not value and not allow_empty)
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise RulePackError(f"{what} must be a list of strings")
    return list(value)


def _paths(value: Any, what: str) -> list[str]:
    paths = _strings(value, what, allow_empty=True)
    for path in paths:
        if any(not part for part in path.split(".")):
            raise RulePackError(f"{what}: {path!r} is not a dotted path")
    return paths


def parse_controls(
    value: Any, frameworks: Mapping[str, str], label: str
) -> dict[str, tuple[str, ...]]:
    """`controls` (framework id -> control ids) checked against the known frameworks."""
    if not isinstance(value, dict) or not value:
        raise RulePackError(f"{label}: 'controls' maps frameworks to control id lists")
    out: dict[str, tuple[str, ...]] = {}
    for fw, ids in value.items():
        if fw not in frameworks:
            raise RulePackError(
                f"{label}: unknown framework '{fw}' in 'controls' "
                f"(known: {', '.join(sorted(frameworks))})"
            )
        if not isinstance(ids, list) or not ids:
            raise RulePackError(f"{label}: controls of '{fw}' must be a non-empty list")
        for control in ids:
            if not isinstance(control, str) or not control.strip():
                raise RulePackError(
                    f"{label}: control {control!r} of '{fw}' must be a string "
                    '(quote numeric ids: "10.2.1")'
                )
        out[fw] = tuple(ids)
    return out


def _duration(raw: dict[str, Any], name: str, label: str, default_days: float) -> int:
    if f"{name}_ms" in raw:
        value = raw[f"{name}_ms"]
        scale = 1
    else:
        value = raw.get(f"{name}_days", default_days)
        scale = DAY_MS
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RulePackError(f"{label}: '{name}_days' / '{name}_ms' must be a non-negative number")
    return int(value * scale)


def _positive(raw: dict[str, Any], name: str, label: str, default: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RulePackError(f"{label}: '{name}' must be a positive integer")
    return value


def _first_seen(raw: Any, label: str) -> FirstSeen:
    label = f"{label}: first_seen"
    if not isinstance(raw, dict) or "identity" not in raw:
        raise RulePackError(f"{label}: missing field 'identity'")
    unknown = set(raw) - {"identity", "learning_days", "learning_ms", "max_identities"}
    if unknown:
        raise RulePackError(f"{label}: unknown field '{sorted(unknown)[0]}'")
    return FirstSeen(
        identity=tuple(_paths(raw["identity"], f"{label}: 'identity'")) or _missing(label),
        learning_ms=_duration(raw, "learning", label, 7),
        max_identities=_positive(raw, "max_identities", label, 64),
    )


def _missing(label: str) -> tuple[str, ...]:
    raise RulePackError(f"{label}: 'identity' needs at least one path")


def _requires_prior(raw: Any, label: str) -> RequiresPrior:
    label = f"{label}: requires_prior"
    if not isinstance(raw, dict):
        raise RulePackError(f"{label}: must be a mapping")
    for name in ("types", "match", "key"):
        if name not in raw:
            raise RulePackError(f"{label}: missing field '{name}'")
    unknown = set(raw) - {"types", "match", "key", "within_days", "within_ms", "max_keys"}
    if unknown:
        raise RulePackError(f"{label}: unknown field '{sorted(unknown)[0]}'")
    try:
        match = compile_condition(raw["match"], "requires_prior.match")
    except ConditionError as exc:
        raise RulePackError(f"{label.rsplit(':', 1)[0]}: {exc}") from None
    key = _paths([raw["key"]] if isinstance(raw["key"], str) else raw["key"], f"{label}: 'key'")
    if len(key) != 1:
        raise RulePackError(f"{label}: 'key' is one dotted path")
    return RequiresPrior(
        types=frozenset(_strings(raw["types"], f"{label}: 'types'")),
        match=match,
        key=key[0],
        within_ms=_duration(raw, "within", label, 30),
        max_keys=_positive(raw, "max_keys", label, 256),
    )
