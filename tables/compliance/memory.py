"""What the stateful rules remember per entity in the `observed` table: the identities a
`first_seen` rule has seen (`<entity>|~seen|<rule>`) and the prior events a `requires_prior`
rule needs (`<entity>|~prior|<rule>`), both bounded."""

from __future__ import annotations

from typing import Any

import orjson

from app.model.events import Event
from app.runtime.staged import StagedState
from tables.compliance.evaluation import failed, first_text
from tables.compliance.rule_pack import Rule

SEEN_MARK = "~seen"
PRIOR_MARK = "~prior"


def copy_value(value: Any) -> Any:
    """A private copy of a stored value (None stays None)."""
    return orjson.loads(orjson.dumps(value)) if value is not None else None


def first_seen(
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
    state = copy_value(observed.get(key))
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


def record_prior(
    rule: Rule,
    event: Event,
    doc: dict[str, Any],
    observed: StagedState,
) -> None:
    """Remember the key of a prior event that satisfies a `requires_prior` rule."""
    spec = rule.requires_prior
    assert spec is not None
    if event.type not in spec.types or failed(event) or not spec.match(doc):
        return
    value = first_text(doc, (spec.key,))
    if value is None:
        return
    key = f"{event.entity}|{PRIOR_MARK}|{rule.id}"
    state = copy_value(observed.get(key))
    if state is None:
        state = {"t": "prior", "keys": {}}
    state["keys"][value] = max(state["keys"].get(value, event.ts_ms), event.ts_ms)
    if len(state["keys"]) > spec.max_keys:
        stalest = min(state["keys"].items(), key=lambda item: (item[1], item[0]))
        del state["keys"][stalest[0]]
    observed[key] = state


def prior_seen(rule: Rule, event: Event, doc: dict[str, Any], observed: StagedState) -> bool:
    """Whether a prior event covering this one was seen within the rule's window."""
    spec = rule.requires_prior
    assert spec is not None
    value = first_text(doc, (spec.key,))
    if value is None:
        return False  # nothing to check against: not verifiable, so not covered
    state = observed.get(f"{event.entity}|{PRIOR_MARK}|{rule.id}")
    seen_at = (state or {}).get("keys", {}).get(value)
    return seen_at is not None and event.ts_ms - spec.within_ms <= seen_at
