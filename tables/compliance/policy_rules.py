"""Rego policies as compliance rules: one rule pack, whatever language a rule is written in.

`compliance_pack(pack_path, policy_dirs)` is the YAML pack (app/rules/compliance.yaml, or
`VIGIL_COMPLIANCE_RULES`) plus one `Rule` per policy of the Rego set (the bundled
app/rules/policies/ and `VIGIL_POLICY_DIR`), so violations of either kind get the same
controls, alerts and posture (tables/compliance/stage.py). A Rego rule is prefiltered by its
declared event types (`RulePack.by_type`) and sources before any Rego runs; its `check` evaluates
the policy on the event's input shape (app/policy/inputs.py).

`PolicyReloader` swaps in a newly loaded set; a set that fails to load leaves the running
one in place and says why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.policy.loader import (
    Policy,
    PolicyError,
    PolicySet,
    bundled_policy_dir,
    load_policies,
    policy_files,
)
from tables.compliance.conditions import Condition
from tables.compliance.rule_pack import (
    DAY_MS,
    DEFAULT_FRAMEWORKS,
    DEFAULT_WINDOW_DAYS,
    Rule,
    RulePack,
    RulePackError,
    load_rule_pack,
    pack_of,
    parse_controls,
)
from tables.compliance.stage import ComplianceStage

log = logging.getLogger(__name__)

#: Stands for "the Rego policy found nothing" on rules that count that as compliant; never
#: called (`tables.compliance.stage.outcome` reads `check`).
_CLEAN = Condition(spec="rego: no messages", test=lambda doc: False)


def policy_dirs(extra: str | Path | None = None) -> list[Path]:
    """The bundled pack, then `extra` (`VIGIL_POLICY_DIR`) when set."""
    return [bundled_policy_dir(), *([Path(extra)] if extra else [])]


def policy_rule(policy: Policy, policies: PolicySet, frameworks: dict[str, str]) -> Rule:
    """The compliance rule of one policy (controls checked like the YAML pack's)."""
    label = f"{policy.file}: policy '{policy.id}'"
    custom = policy.custom
    try:
        controls = (
            parse_controls(custom["controls"], frameworks, label) if "controls" in custom else {}
        )
    except RulePackError as exc:
        raise PolicyError(str(exc)) from None
    approximate = tuple(str(fw) for fw in custom.get("approximate") or ())
    if any(fw not in controls for fw in approximate):
        raise PolicyError(f"{label}: 'approximate' names a framework 'controls' lacks")
    window = custom.get("window_days", DEFAULT_WINDOW_DAYS)
    if isinstance(window, bool) or not isinstance(window, int | float) or window <= 0:
        raise PolicyError(f"{label}: custom.window_days must be a positive number")
    clean_passes = policy.pass_when_clean

    def check(doc: dict[str, Any]) -> tuple[str, ...] | None:
        return policies.check(policy, doc)

    return Rule(
        id=policy.id,
        title=policy.title,
        severity=policy.severity,
        types=policy.types,
        match=Condition(spec={"rego": policy.package}, test=lambda doc: False),
        controls=controls,
        description=policy.description,
        sources=policy.sources,
        pass_=_CLEAN if clean_passes else None,
        approximate=approximate,
        tags=("rego", policy.shape),
        window_ms=None if clean_passes else int(window * DAY_MS),
        check=check,
    )


def with_policies(pack: RulePack, policies: PolicySet) -> RulePack:
    """`pack` plus a rule per policy; PolicyError when an id is taken by a YAML rule."""
    taken = {rule.id for rule in pack.rules}
    extra = []
    for policy in policies.policies:
        if policy.id in taken:
            raise PolicyError(f"{policy.file}: policy id '{policy.id}' is a rule of the YAML pack")
        extra.append(policy_rule(policy, policies, pack.frameworks or DEFAULT_FRAMEWORKS))
    return pack_of((*pack.rules, *extra), pack.frameworks)


def compliance_pack(
    pack_path: str | None = None, policy_dir: str | None = None
) -> tuple[RulePack, PolicySet]:
    """The YAML pack with the Rego policies (bundled + `policy_dir`) added; the same files
    give the same (cached) pack, so pipelines built in one process share one engine."""
    dirs = policy_dirs(policy_dir)
    return _compliance_pack(pack_path, tuple(dirs), _fingerprint(dirs))


def _fingerprint(dirs: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    try:
        return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in policy_files(dirs))
    except OSError:
        return ()


@lru_cache(maxsize=4)
def _compliance_pack(
    pack_path: str | None, dirs: tuple[Path, ...], fingerprint: tuple[Any, ...]
) -> tuple[RulePack, PolicySet]:
    policies = load_policies(dirs)
    return with_policies(load_rule_pack(pack_path), policies), policies


@dataclass(slots=True)
class ReloadResult:
    """What a reload did: loaded (with the new set's digest and size) or kept the old set."""

    ok: bool
    digest: str
    policies: int
    error: str | None = None


class PolicyReloader:
    """Reloads the Rego policies of a running ComplianceStage."""

    def __init__(self, stage: ComplianceStage, pack_path: str | None, policy_dir: str | None):
        self.stage = stage
        self.pack_path = pack_path
        self.policy_dir = policy_dir
        self.digest = ""

    def reload(self, strict: bool = False) -> ReloadResult:
        """Load the set again; on success swap the stage's pack, else keep it and log why
        (`strict`: raise instead, as at start, when there is nothing to keep running)."""
        try:
            pack, policies = compliance_pack(self.pack_path, self.policy_dir)
        except (PolicyError, RulePackError) as exc:
            if strict:
                raise
            log.error("policy reload rejected, the previous policy set keeps running: %s", exc)
            return ReloadResult(False, self.digest, _count(self.stage.pack), str(exc))
        self.stage.pack = pack
        self.digest = policies.digest
        log.info("policy set %s loaded: %d policies", policies.digest[:12], len(policies.policies))
        return ReloadResult(True, policies.digest, len(policies.policies))


def _count(pack: RulePack) -> int:
    return sum(1 for rule in pack.rules if rule.check is not None)
