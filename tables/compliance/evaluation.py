"""Evaluating the rule pack on one event: outcomes, violations (`evaluate` is pure, for the
stateless rules), the event's scope and actor, and the alert inputs violations become."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.model.alerts import AlertInput
from app.model.events import Event, event_id, format_time
from app.model.fingerprints import alertmanager_fingerprint
from tables.compliance.conditions import first
from tables.compliance.rule_pack import Rule, RulePack, load_rule_pack

#: Audit stages that repeat a later stage of the same request (and know no outcome yet).
SKIPPED_AUDIT_STAGES = frozenset({"RequestReceived"})


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


def failed(event: Event) -> bool:
    """Whether the event reports a request that did not take effect (denied or failed)."""
    a = event.attributes
    if event.type == "cloud_api_call":  # the adapter flags a failed console login
        return bool(a.get("error_code")) or "console_login_failed" in (a.get("risk_reasons") or ())
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


def first_text(doc: dict[str, Any], paths: tuple[str, ...]) -> str | None:
    for path in paths:
        value = first(doc, path)
        if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
            return str(value)
    return None


def skipped(event: Event) -> bool:
    """Whether the event is an audit stage that a later stage of the request repeats."""
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


def violation_of(
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
        subject=first_text(doc, rule.subject) if rule.subject else None,
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
    if skipped(event):
        return []
    doc = event.to_dict()
    is_failed = failed(event)
    out = []
    for rule in pack.rules_for(event, doc):
        if rule.stateful:
            continue
        if is_failed and not rule.include_failed:
            continue
        status, messages = outcome(rule, doc)
        if status == "fail":
            out.append(violation_of(rule, event, doc, k8s_cluster, None, messages))
    return out


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
    """The `violation` alert for tables/alerts/stage.py (`AlertStage.on_alert`).

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
