"""The rule guards (tables/compliance/rule_guards.py): what they read off a condition, and
that they never drop a rule that would fail or pass an event."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from app.generator.stream import TelemetryGenerator
from app.model.events import Event
from app.sources.errors import NormalizeError
from tables.compliance.evaluation import outcome, skipped
from tables.compliance.policy_rules import compliance_pack
from tables.compliance.rule_guards import guards_of, rule_guards
from tests.unit.compliance.compliance_events import NORMALIZER
from tests.unit.compliance.test_compliance import CASES

VERB = "attributes.verb"
PODS = {"path": "r", "eq": "p"}
B = {"path": VERB, "eq": "b"}
#: The bench stream's start (scripts/replay_digest.py).
START_MS = 1_767_225_600_000


@pytest.mark.parametrize(
    ("spec", "guards"),
    [
        ({"path": VERB, "eq": "create"}, {VERB: {"create"}}),
        ({"path": VERB, "in": ["create", "update"]}, {VERB: {"create", "update"}}),
        ({"path": "x", "in": ["-1", -1]}, {}),  # not only strings
        ({"path": "x", "eq": True}, {}),
        ({"path": "x.*.y", "eq": "a"}, {}),  # may resolve to several values
        ({"path": "x", "ne": "a"}, {}),
        ({"path": "x", "regex": "a"}, {}),
        ({"not": {"path": "x", "eq": "a"}}, {}),
        ({"path": "items", "any_item": {"path": "x", "eq": "a"}}, {}),
        ({"all": [{"path": VERB, "in": ["a", "b"]}, B, PODS]}, {VERB: {"b"}, "r": {"p"}}),
        ({"any": [{"path": VERB, "eq": "a"}, {"all": [B, PODS]}]}, {VERB: {"a", "b"}}),
        ({"any": [{"path": VERB, "eq": "a"}, PODS]}, {}),
    ],
)  # fmt: skip
def test_guards_of(spec, guards):
    assert guards_of(spec) == guards


def test_a_rule_with_pass_needs_what_match_or_pass_needs():
    match = {"all": [{"path": VERB, "eq": "create"}, {"path": "r", "eq": "pods"}]}
    assert rule_guards(match, None) == {VERB: {"create"}, "r": {"pods"}}
    assert rule_guards(match, {"path": VERB, "eq": "update"}) == {VERB: {"create", "update"}}
    assert rule_guards(match, {"path": "other", "exists": True}) == {}


def _generated_events(count: int) -> list[Event]:
    events = []
    for record in TelemetryGenerator(seed=11, bad_ratio=0.0).records(START_MS, 20.0, count):
        with contextlib.suppress(NormalizeError):
            events += NORMALIZER.normalize(record.value, family=record.family)
    return events


def test_guards_keep_every_rule_that_says_something(fixtures_dir: Path):
    """Over the compliance cases and a generated stream: every rule of an event's type that
    fails or passes it is among `rules_for`, and most events are checked against few rules."""
    pack, _ = compliance_pack()
    events = _generated_events(6_000)
    for fire, quiet in CASES.values():
        events += fire(fixtures_dir) + quiet(fixtures_dir)
    checked = kept = 0
    for event in events:
        if skipped(event):
            continue
        doc = event.to_dict()
        chosen = pack.rules_for(event, doc)
        applying = [r for r in pack.by_type.get(event.type, ()) if r.applies_to(event)]
        assert chosen == [r for r in applying if r in chosen]  # pack order
        for rule in applying:
            if rule not in chosen:
                assert outcome(rule, doc) == (None, ()), (rule.id, doc)
        checked += len(applying)
        kept += len(chosen)
    assert kept < checked / 3
