"""Compliance rules over canonical events: violations, alerts and posture per control.

The rule pack (`app/rules/compliance.yaml`, format in docs/drift.md) is loaded and validated once
(`load_rule_pack`): every rule names the event types it reads, a `match` condition
(tables/compliance/conditions.py), optionally a `pass` condition (a compliant observation of the
same entity), and the controls it tests in NIST SP 800-53 r5, PCI DSS 4.0 and the CIS benchmarks.

- `evaluate(event)` is pure: the violations of the stateless rules an event raises.
- `ComplianceStage.on_event` adds the stateful rules and the posture:
  - `first_seen` rules (e.g. secrets read by unusual identities) keep a bounded set of the
    identities seen per entity, under `<entity>|~seen|<rule>` in the `observed` table; during
    the learning period (from the first sighting of the entity) identities are learned
    silently, afterwards a new one is a violation once, then it is known.
  - `requires_prior` rules (e.g. a deployment without a scan) keep, per entity, the keys (commit
    SHAs) of the prior events that satisfy them, under `<entity>|~prior|<rule>`; the rule fires
    when the event's key is not among them.
  - posture rows (posture.py), keyed by control, scope and entity, so only the entity's
    partition writes them.
  Returns the outputs (`violations`, `posture` status changes) and the alert inputs for
  tables/alerts/stage.py `AlertStage.on_alert`: one firing `violation` alert per violation, and a
  resolved one when a compliant observation flips a failing rule back to pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.model.alerts import AlertInput
from app.model.events import Event
from app.model.outputs import Output
from app.runtime.staged import StagedState
from tables.compliance.evaluation import (
    Violation,
    evaluate,
    failed,
    first_text,
    outcome,
    pass_alert,
    skipped,
    violation_alert,
    violation_of,
)
from tables.compliance.memory import first_seen, prior_seen, record_prior
from tables.compliance.posture import update_posture
from tables.compliance.rule_pack import Rule, RulePack, load_rule_pack


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


class ComplianceStage:
    """Evaluates the rule pack per event and keeps posture (see the module docstring)."""

    def __init__(self, config: ComplianceConfig | None = None, pack: RulePack | None = None):
        self.config = config or ComplianceConfig()
        self.pack = pack or load_rule_pack(self.config.pack_path)

    def reads(self, event: Event) -> bool:
        """Whether any rule of the pack reads this event (as a subject or as a prior)."""
        if skipped(event):
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
        if skipped(event):
            return result
        doc = event.to_dict()
        for rule in self.pack.prior_by_type.get(event.type, ()):
            record_prior(rule, event, doc, observed)
        rules = self.pack.rules_for(event, doc)
        if not rules:
            return result
        is_failed = failed(event)
        fails: list[tuple[Rule, Violation]] = []
        passes: list[tuple[Rule, str | None]] = []
        for rule in rules:
            if is_failed and not rule.include_failed:
                continue
            subject = first_text(doc, rule.subject) if rule.subject else None
            status, messages = outcome(rule, doc)
            if status == "fail":
                identity = None
                if rule.first_seen is not None:
                    identity = first_text(doc, rule.first_seen.identity)
                    if identity is None or not first_seen(rule, event, identity, observed):
                        continue
                elif rule.requires_prior is not None and prior_seen(rule, event, doc, observed):
                    passes.append((rule, subject))
                    continue
                violation = violation_of(
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
        flipped = update_posture(
            event,
            fails,
            passes,
            posture,
            result.outputs,
            self.config.k8s_cluster,
            self.config.record_passes,
        )
        for rule, subject in passes:
            if (rule.id, subject) in flipped:
                result.alerts.append(pass_alert(rule, event, subject))
        return result
