"""Compliance rules over canonical events: violations, alerts and posture per control.

The rule pack (`app/rules/compliance.yaml`, format in docs/drift.md) is loaded and validated once
(`load_rule_pack`): every rule names the event types it reads, a `match` condition
(tables/conditions.py), optionally a `pass` condition (a compliant observation of the same
entity), and the controls it tests in NIST SP 800-53 r5, PCI DSS 4.0 and the CIS benchmarks.

- `evaluate(event)` is pure: the violations of the stateless rules an event raises.
- `ComplianceStage.on_event` adds the stateful rules and the posture:
  - `first_seen` rules (e.g. secrets read by unusual identities) keep a bounded set of the
    identities seen per entity, under `<entity>|~seen|<rule>` in the `observed` table; during
    the learning period (from the first sighting of the entity) identities are learned
    silently, afterwards a new one is a violation once, then it is known.
  - `requires_prior` rules (e.g. a deployment without a scan) keep, per entity, the keys (commit
    SHAs) of the prior events that satisfy them, under `<entity>|~prior|<rule>`; the rule fires
    when the event's key is not among them.
  - posture rows, table `posture`, key `<framework>|<control>|<scope>|<entity>[#<subject>]`:
    `{status, rules{id: {status, last_violation, last_pass}}, failing, last_violation,
    last_pass}`. The status of a rule is that of its latest observation in event time (a late
    event never overrides a newer one); a row fails while any of its rules fails. Keys include
    the entity, so only the entity's partition writes them.
  Returns the outputs (`violations`, `posture` status changes) and the alert inputs for
  tables/dedup.py `AlertStage.on_alert`: one firing `violation` alert per violation, and a
  resolved one when a compliant observation flips a failing rule back to pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml

from app.events import SEVERITIES, Event, event_id, format_time
from app.model.fingerprints import alertmanager_fingerprint
from app.outputs import Output
from app.runtime.staged import StagedState
from tables.alert_labels import AlertInput
from tables.conditions import Condition, ConditionError, compile_condition, first

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
#: Audit stages that repeat a later stage of the same request (and know no outcome yet).
SKIPPED_AUDIT_STAGES = frozenset({"RequestReceived"})
SEEN_MARK = "~seen"
PRIOR_MARK = "~prior"


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
    #: A Rego policy's evaluation (tables/policy_rules.py) instead of `match` / `pass`: the
    #: violation messages for an event dict, () when compliant, None when not applicable.
    check: Callable[[dict[str, Any]], tuple[str, ...] | None] | None = None

    @property
    def stateful(self) -> bool:
        return self.first_seen is not None or self.requires_prior is not None

    def applies_to(self, event: Event) -> bool:
        return event.type in self.types and (self.sources is None or event.source in self.sources)

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

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


@dataclass(frozen=True, slots=True)
class Violation:
    """One rule violated by one event."""

    rule_id: str
    title: str
    severity: str
    entity: str
    scope: str
    subject: str | None
    source: str
    type: str
    event_id: str
    ts_ms: int
    controls: dict[str, tuple[str, ...]]
    approximate: tuple[str, ...]
    actor: dict[str, Any]
    identity: str | None = None
    #: What a Rego policy said (its `deny` / `violation` messages); empty for YAML rules.
    messages: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return event_id("violation", self.event_id, self.rule_id, self.subject or "")

    def to_dict(self) -> dict[str, Any]:
        """The `violations` record."""
        return {
            "id": self.id,
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": self.severity,
            "entity": self.entity,
            "scope": self.scope,
            "subject": self.subject,
            "identity": self.identity,
            "source": self.source,
            "type": self.type,
            "event_id": self.event_id,
            "time": format_time(self.ts_ms),
            "controls": {fw: list(ids) for fw, ids in sorted(self.controls.items())},
            "approximate": list(self.approximate),
            "actor": self.actor,
        } | ({"messages": list(self.messages)} if self.messages else {})


# ---- loading ---------------------------------------------------------------------------


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


# ---- evaluation ------------------------------------------------------------------------


def failed(event: Event) -> bool:
    """Whether the event reports a request that did not take effect (denied or failed)."""
    a = event.attributes
    if event.type == "cloud_api_call":
        if a.get("error_code"):
            return True
        response = a.get("response_elements")
        return isinstance(response, dict) and response.get("ConsoleLogin") == "Failure"
    if event.type == "k8s_audit":
        code = a.get("response_code")
        return a.get("decision") == "forbidden" or (
            isinstance(code, int) and not isinstance(code, bool) and code >= 400
        )
    return False


def scope_of(event: Event, k8s_cluster: str | None = None) -> str:
    """The posture scope: AWS account, Kubernetes namespace (or `_cluster`), else the entity."""
    a = event.attributes
    if event.type in ("cloud_api_call", "config_compliance"):
        account = a.get("account_id") or a.get("aws_account_id")
        if isinstance(account, str) and account:
            return f"aws:{account}"
        if event.entity.startswith("aws:"):
            return event.entity.split("/", 1)[0]
    if event.type == "k8s_audit":
        namespace = a.get("namespace") or "_cluster"
        return f"k8s:{k8s_cluster}/{namespace}" if k8s_cluster else f"k8s:{namespace}"
    if event.type in ("tf_change", "tf_drift"):
        return f"tf:{a.get('workspace') or 'default'}"
    return event.entity


def actor_of(event: Event) -> dict[str, Any]:
    """Who made the change: user or role, source IP, user agent (None where unknown)."""
    a = event.attributes
    if event.type == "cloud_api_call":
        return {
            "user": a.get("principal"),
            "role": a.get("session_issuer_arn"),
            "arn": a.get("principal_arn"),
            "source_ip": a.get("source_ip"),
            "user_agent": a.get("user_agent"),
        }
    if event.type == "k8s_audit":
        ips = a.get("source_ips") or []
        return {
            "user": a.get("impersonated_user") or a.get("username"),
            "role": a.get("username") if a.get("impersonated_user") else None,
            "source_ip": ips[0] if ips else None,
            "user_agent": a.get("user_agent"),
        }
    user = a.get("actor") or a.get("deployed_by") or a.get("username")
    return {"user": user, "role": None, "source_ip": None, "user_agent": None}


def _first_text(doc: dict[str, Any], paths: tuple[str, ...]) -> str | None:
    for path in paths:
        value = first(doc, path)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
            return str(value)
    return None


def _skipped(event: Event) -> bool:
    return event.type == "k8s_audit" and event.attributes.get("stage") in SKIPPED_AUDIT_STAGES


def outcome(rule: Rule, doc: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """("fail", messages), ("pass", ()) or (None, ()): what the rule says about an event dict
    (`match`, then `pass`; a Rego rule's `check`, whose clean result is a pass when the rule
    has `pass`)."""
    if rule.check is not None:
        messages = rule.check(doc)
        if messages:
            return "fail", messages
        return ("pass" if messages is not None and rule.pass_ is not None else None), ()
    if rule.match(doc):
        return "fail", ()
    return ("pass" if rule.pass_ is not None and rule.pass_(doc) else None), ()


def _violation(
    rule: Rule,
    event: Event,
    doc: dict[str, Any],
    k8s_cluster: str | None,
    identity: str | None,
    messages: tuple[str, ...] = (),
) -> Violation:
    return Violation(
        rule_id=rule.id,
        title=rule.title,
        severity=rule.severity,
        entity=event.entity,
        scope=scope_of(event, k8s_cluster),
        subject=_first_text(doc, rule.subject) if rule.subject else None,
        source=event.source,
        type=event.type,
        event_id=event.id,
        ts_ms=event.ts_ms,
        controls=rule.controls,
        approximate=rule.approximate,
        actor=actor_of(event),
        identity=identity,
        messages=messages,
    )


def evaluate(
    event: Event, pack: RulePack | None = None, k8s_cluster: str | None = None
) -> list[Violation]:
    """The violations of the pack's *stateless* rules that `event` raises (pure).

    Rules with `first_seen` or `requires_prior` need per-entity memory: ComplianceStage
    evaluates them.
    """
    pack = pack or load_rule_pack()
    if _skipped(event):
        return []
    doc = event.to_dict()
    is_failed = failed(event)
    out = []
    for rule in pack.by_type.get(event.type, ()):
        if rule.stateful or not rule.applies_to(event):
            continue
        if is_failed and not rule.include_failed:
            continue
        status, messages = outcome(rule, doc)
        if status == "fail":
            out.append(_violation(rule, event, doc, k8s_cluster, None, messages))
    return out


# ---- alerts ----------------------------------------------------------------------------


def _labels(rule: Rule, event: Event, subject: str | None, identity: str | None) -> dict[str, str]:
    labels = {
        "alertname": rule.id,
        "entity": event.entity,
        "source": event.source,
        "controls": rule.controls_label(),
    }
    if subject:
        labels["subject"] = subject
    if identity:
        labels["identity"] = identity
    return labels


def _annotation_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()[:1024]


def violation_alert(violation: Violation, event: Event, pack: RulePack | None = None) -> AlertInput:
    """The `violation` alert for tables/dedup.py (`AlertStage.on_alert`).

    Labels: alertname = rule id, entity, source, controls (`fw:id,id;fw:id`), plus subject and
    identity when the rule has them. Annotations carry the title, scope, actor and event id.
    """
    pack = pack or load_rule_pack()
    rule = pack.rule(violation.rule_id)
    labels = _labels(rule, event, violation.subject, violation.identity)
    annotations = {
        "summary": f"{rule.title}: {event.entity}",
        "title": rule.title,
        "scope": violation.scope,
        "actor": _annotation_json({k: v for k, v in violation.actor.items() if v is not None}),
        "event_id": event.id,
        "event_type": event.type,
    }
    if rule.approximate:
        annotations["approximate_mappings"] = ",".join(rule.approximate)
    if rule.description:
        annotations["description"] = rule.description[:1024]
    if violation.messages:
        annotations["messages"] = _annotation_json(list(violation.messages))
    return AlertInput(
        id=violation.id,
        fingerprint=alertmanager_fingerprint(labels),
        entity=event.entity,
        kind="violation",
        source=event.source,
        type=event.type,
        labels=labels,
        annotations=annotations,
        status="firing",
        ts_ms=event.ts_ms,
        starts_ms=event.ts_ms,
        ends_ms=None,
        severity=rule.severity,
        scoring={"confidence": 0.8, "severity_label": rule.severity},
    )


def pass_alert(
    rule: Rule, event: Event, subject: str | None = None, identity: str | None = None
) -> AlertInput:
    """The resolved counterpart of `violation_alert` (same labels, so same fingerprint)."""
    labels = _labels(rule, event, subject, identity)
    return AlertInput(
        id=event_id("violation-pass", event.id, rule.id, subject or ""),
        fingerprint=alertmanager_fingerprint(labels),
        entity=event.entity,
        kind="violation",
        source=event.source,
        type=event.type,
        labels=labels,
        annotations={"summary": f"{rule.title}: {event.entity} compliant again"},
        status="resolved",
        ts_ms=event.ts_ms,
        starts_ms=event.ts_ms,
        ends_ms=None,
        severity=rule.severity,
        scoring={"confidence": 0.8, "severity_label": rule.severity},
    )


# ---- the stateful stage ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComplianceConfig:
    """Compliance stage settings."""

    #: Rule pack file; None = the bundled app/rules/compliance.yaml.
    pack_path: str | None = None
    #: Also write `pass` rows for entities never seen failing (more keys, fuller posture).
    record_passes: bool = False
    #: Emit every violation on the `violations` topic (alerts go to dedup either way).
    emit_violations: bool = True
    #: Cluster name prefixed to Kubernetes scopes (`k8s:<cluster>/<namespace>`).
    k8s_cluster: str | None = None


@dataclass(slots=True)
class ComplianceResult:
    """What one event produced: records to send and alert inputs for the dedup stage."""

    outputs: list[Output]
    alerts: list[AlertInput]
    violations: list[Violation]


def posture_key(framework: str, control: str, scope: str, entity: str) -> str:
    """`<framework>|<control>|<scope>|<entity>` (entity may carry `#<subject>`)."""
    return f"{framework}|{control}|{scope}|{entity}"


def _copy(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value)) if value is not None else None


class ComplianceStage:
    """Evaluates the rule pack per event and keeps posture (see the module docstring)."""

    def __init__(self, config: ComplianceConfig | None = None, pack: RulePack | None = None):
        self.config = config or ComplianceConfig()
        self.pack = pack or load_rule_pack(self.config.pack_path)

    def reads(self, event: Event) -> bool:
        """Whether any rule of the pack reads this event (as a subject or as a prior)."""
        if _skipped(event):
            return False
        return event.type in self.pack.by_type or event.type in self.pack.prior_by_type

    def evaluate(self, event: Event) -> list[Violation]:
        """Stateless violations (see `evaluate`)."""
        return evaluate(event, self.pack, self.config.k8s_cluster)

    def on_event(
        self,
        event: Event,
        watermark: int | None,
        posture: StagedState,
        observed: StagedState,
    ) -> ComplianceResult:
        """Evaluate every rule for `event`, update memory and posture, build alerts.

        `watermark` is accepted for uniformity with the other stages; everything here is
        decided by the event's own time, so the stage needs no timers.
        """
        result = ComplianceResult([], [], [])
        if _skipped(event):
            return result
        doc = event.to_dict()
        for rule in self.pack.prior_by_type.get(event.type, ()):
            self._record_prior(rule, event, doc, observed)
        rules = [r for r in self.pack.by_type.get(event.type, ()) if r.applies_to(event)]
        if not rules:
            return result
        is_failed = failed(event)
        fails: list[tuple[Rule, Violation]] = []
        passes: list[tuple[Rule, str | None]] = []
        for rule in rules:
            if is_failed and not rule.include_failed:
                continue
            subject = _first_text(doc, rule.subject) if rule.subject else None
            status, messages = outcome(rule, doc)
            if status == "fail":
                identity = None
                if rule.first_seen is not None:
                    identity = _first_text(doc, rule.first_seen.identity)
                    if identity is None or not self._first_seen(rule, event, identity, observed):
                        continue
                elif rule.requires_prior is not None and self._prior_seen(
                    rule, event, doc, observed
                ):
                    passes.append((rule, subject))
                    continue
                violation = _violation(
                    rule, event, doc, self.config.k8s_cluster, identity, messages
                )
                fails.append((rule, violation))
            elif status == "pass":
                passes.append((rule, subject))
        for _, violation in fails:
            result.violations.append(violation)
            result.alerts.append(violation_alert(violation, event, self.pack))
            if self.config.emit_violations:
                result.outputs.append(Output("violations", event.entity, violation.to_dict()))
        flipped = self._update_posture(event, fails, passes, posture, result)
        for rule, subject in passes:
            if (rule.id, subject) in flipped:
                result.alerts.append(pass_alert(rule, event, subject))
        return result

    # ---- memory ----------------------------------------------------------------------

    def _first_seen(
        self,
        rule: Rule,
        event: Event,
        identity: str,
        observed: StagedState,
    ) -> bool:
        """Whether `identity` is new for the entity after the learning period (and remember
        it)."""
        spec = rule.first_seen
        assert spec is not None
        key = f"{event.entity}|{SEEN_MARK}|{rule.id}"
        state = _copy(observed.get(key))
        if state is None:
            state = {"t": "seen", "first": event.ts_ms, "ids": {}}
        state["first"] = min(state["first"], event.ts_ms)
        known = state["ids"].get(identity)
        learning = event.ts_ms < state["first"] + spec.learning_ms
        if known is not None:
            known["l"] = max(known["l"], event.ts_ms)
            new = False
        else:
            new = not learning
            state["ids"][identity] = {"f": event.ts_ms, "l": event.ts_ms, "v": new}
            if len(state["ids"]) > spec.max_identities:  # forget the least recently seen
                stalest = min(state["ids"].items(), key=lambda item: (item[1]["l"], item[0]))
                del state["ids"][stalest[0]]
        observed[key] = state
        return new

    def _record_prior(
        self,
        rule: Rule,
        event: Event,
        doc: dict[str, Any],
        observed: StagedState,
    ) -> None:
        spec = rule.requires_prior
        assert spec is not None
        if event.type not in spec.types or failed(event) or not spec.match(doc):
            return
        value = _first_text(doc, (spec.key,))
        if value is None:
            return
        key = f"{event.entity}|{PRIOR_MARK}|{rule.id}"
        state = _copy(observed.get(key))
        if state is None:
            state = {"t": "prior", "keys": {}}
        state["keys"][value] = max(state["keys"].get(value, event.ts_ms), event.ts_ms)
        if len(state["keys"]) > spec.max_keys:
            stalest = min(state["keys"].items(), key=lambda item: (item[1], item[0]))
            del state["keys"][stalest[0]]
        observed[key] = state

    @staticmethod
    def _prior_seen(rule: Rule, event: Event, doc: dict[str, Any], observed: StagedState) -> bool:
        spec = rule.requires_prior
        assert spec is not None
        value = _first_text(doc, (spec.key,))
        if value is None:
            return False  # nothing to check against: not verifiable, so not covered
        state = observed.get(f"{event.entity}|{PRIOR_MARK}|{rule.id}")
        seen_at = (state or {}).get("keys", {}).get(value)
        return seen_at is not None and event.ts_ms - spec.within_ms <= seen_at

    # ---- posture ---------------------------------------------------------------------

    def _update_posture(
        self,
        event: Event,
        fails: list[tuple[Rule, Violation]],
        passes: list[tuple[Rule, str | None]],
        posture: StagedState,
        result: ComplianceResult,
    ) -> set[tuple[str, str | None]]:
        """Apply this event's fail and pass observations to every control row they touch;
        returns the (rule, subject) pairs that flipped from fail to pass."""
        scope = scope_of(event, self.config.k8s_cluster)
        touches: dict[str, list[tuple[str, str, str | None, str, str, str]]] = {}
        observations = [(rule, v.subject, "fail") for rule, v in fails] + [
            (rule, subject, "pass") for rule, subject in passes
        ]
        for rule, subject, status in observations:
            entity = f"{event.entity}#{subject}" if subject else event.entity
            for fw, ids in sorted(rule.controls.items()):
                for control in ids:
                    key = posture_key(fw, control, scope, entity)
                    touches.setdefault(key, []).append(
                        (rule.id, status, subject, fw, control, entity)
                    )
        flipped: set[tuple[str, str | None]] = set()
        now = event.ts_ms
        windows = {rule.id: rule.window_ms for rule, *_ in observations}
        for key, items in sorted(touches.items()):
            row = _copy(posture.get(key))
            before = _copy(row)
            if row is None:
                if not self.config.record_passes and all(s == "pass" for _, s, *_ in items):
                    continue  # never seen failing: nothing to record unless asked
                _, _, _, fw, control, entity = items[0]
                row = {
                    "t": "posture",
                    "framework": fw,
                    "control": control,
                    "scope": scope,
                    "entity": entity,
                    "status": "pass",
                    "rules": {},
                }
            for rule_id, status, subject, *_ in items:
                entry = row["rules"].setdefault(
                    rule_id, {"status": None, "last_violation": None, "last_pass": None}
                )
                was = entry["status"]
                name = "last_violation" if status == "fail" else "last_pass"
                if entry[name] is None or now > entry[name]:
                    entry[name] = now
                window = windows.get(rule_id)
                if window is not None and entry["last_violation"] is not None:
                    entry["expires"] = entry["last_violation"] + window
                entry["status"] = _status(entry)
                if was != entry["status"] and was == "fail":
                    flipped.add((rule_id, subject))
            _summarise(row)
            if row == before:
                continue
            posture[key] = row
            if before is None or before["status"] != row["status"]:
                result.outputs.append(self._posture_output(key, row, event))
        return flipped

    @staticmethod
    def _posture_output(key: str, row: dict[str, Any], event: Event) -> Output:
        value = {
            "id": event_id("posture", key, row["status"], event.id),
            "key": key,
            "framework": row["framework"],
            "control": row["control"],
            "scope": row["scope"],
            "entity": row["entity"],
            "status": row["status"],
            "failing_rules": row["failing"],
            "last_violation": _time(row["last_violation"]),
            "last_pass": _time(row["last_pass"]),
            "time": event.time,
        }
        return Output("posture", key, value)


def _status(entry: Mapping[str, Any]) -> str:
    """fail when the latest observation (event time) is a violation; a tie counts as fail."""
    last_violation, last_pass = entry.get("last_violation"), entry.get("last_pass")
    if last_violation is not None and (last_pass is None or last_violation >= last_pass):
        return "fail"
    return "pass"


def _summarise(row: dict[str, Any]) -> None:
    rules = row["rules"]
    row["failing"] = sorted(rid for rid, entry in rules.items() if entry["status"] == "fail")
    row["status"] = "fail" if row["failing"] else "pass"
    violations = [e["last_violation"] for e in rules.values() if e["last_violation"] is not None]
    passes = [e["last_pass"] for e in rules.values() if e["last_pass"] is not None]
    row["last_violation"] = max(violations) if violations else None
    row["last_pass"] = max(passes) if passes else None


def _time(ts_ms: int | None) -> str | None:
    return format_time(ts_ms) if ts_ms is not None else None


def _control_order(control: str) -> tuple[Any, ...]:
    """Natural order: AC-2 < AC-6 < AC-6(2) < AC-14; 1.2 < 1.10; 10.2.1 < 10.2.1.5."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", control))


def effective_status(entry: Mapping[str, Any], now_ms: int | None = None) -> str:
    """A rule entry's status at `now_ms`: a failure past its window (`expires`) has lapsed."""
    status = entry.get("status") or "pass"
    expires = entry.get("expires")
    if status == "fail" and now_ms is not None and expires is not None and expires <= now_ms:
        return "pass"
    return status


def posture_rows(
    items: Iterable[tuple[str, Any]], now_ms: int | None = None, max_entities: int = 20
) -> list[dict[str, Any]]:
    """Aggregate `posture` table items into one row per framework, control and scope.

    Each row: `{framework, control, scope, status (fail if any entity fails), failing,
    passing (entity counts), failing_entities (first `max_entities`, sorted), rules (failing
    rule ids), last_violation, last_pass}`, sorted by framework, control, scope. With `now_ms`
    (the partition watermark, say), failures of rules without a `pass` condition lapse once
    their window has passed.
    """
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for _, row in items:
        if not isinstance(row, dict) or row.get("t") != "posture":
            continue
        gkey = (row["framework"], row["control"], row["scope"])
        group = groups.setdefault(
            gkey,
            {
                "framework": gkey[0],
                "control": gkey[1],
                "scope": gkey[2],
                "status": "pass",
                "failing": 0,
                "passing": 0,
                "failing_entities": [],
                "rules": set(),
                "last_violation": None,
                "last_pass": None,
            },
        )
        failing = sorted(
            rid
            for rid, entry in (row.get("rules") or {}).items()
            if effective_status(entry, now_ms) == "fail"
        )
        if failing:
            group["failing"] += 1
            group["status"] = "fail"
            group["failing_entities"].append(row["entity"])
            group["rules"].update(failing)
        else:
            group["passing"] += 1
        for name in ("last_violation", "last_pass"):
            value = row.get(name)
            if value is not None and (group[name] is None or value > group[name]):
                group[name] = value
    out = []
    for gkey in sorted(groups, key=lambda k: (k[0], _control_order(k[1]), k[2])):
        group = groups[gkey]
        group["failing_entities"] = sorted(group["failing_entities"])[:max_entities]
        group["rules"] = sorted(group["rules"])
        group["last_violation"] = _time(group["last_violation"])
        group["last_pass"] = _time(group["last_pass"])
        out.append(group)
    return out
