"""Which rules of an event type can say anything about an event, without running them.

Most rules read one kind of call or request: their `match` (and `pass`) condition holds only
when a plain field has one of a few string values (`attributes.event_name in [...]`,
`attributes.verb in [...]`). `guards_of` reads those requirements off the condition's source;
`RuleGuards` resolves each guarded field once per event and keeps only the rules whose every
requirement holds, so an event is checked against the few rules it can fail or pass instead
of every rule of its type. A guard is only ever a necessary condition: a rule it keeps is
evaluated as before, and a rule it drops could only have said nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tables.compliance.conditions import first

if TYPE_CHECKING:
    from tables.compliance.rule_pack import Rule

#: A condition's requirements: field path -> the string values it must hold (one of them).
Guards = Mapping[str, frozenset[str]]


def guards_of(spec: Any) -> dict[str, frozenset[str]]:
    """What a condition (its YAML source) needs to hold: a path (without `*`, so it resolves
    to one value at most) -> the strings its value must be one of. `eq` and `in` on strings
    give one; `all` keeps every child's, `any` the paths every child constrains (values
    joined); anything else constrains nothing."""
    if not isinstance(spec, dict):
        return {}
    if "all" in spec and isinstance(spec["all"], list):
        guards: dict[str, frozenset[str]] = {}
        for child in spec["all"]:
            for path, values in guards_of(child).items():
                guards[path] = guards[path] & values if path in guards else values
        return guards
    if "any" in spec and isinstance(spec["any"], list):
        return _either(*(guards_of(child) for child in spec["any"]))
    path = spec.get("path")
    if not isinstance(path, str) or "*" in path.split(".") or len(spec) != 2:
        return {}
    if "eq" in spec and isinstance(spec["eq"], str):
        return {path: frozenset({spec["eq"]})}
    operand = spec.get("in")
    if isinstance(operand, list) and operand and all(isinstance(v, str) for v in operand):
        return {path: frozenset(operand)}
    return {}


def _either(*alternatives: Guards) -> dict[str, frozenset[str]]:
    """What one of several conditions needs: the paths all of them constrain, values joined."""
    if not alternatives:
        return {}
    paths = set(alternatives[0]).intersection(*alternatives[1:])
    return {p: frozenset().union(*(guards[p] for guards in alternatives)) for p in paths}


def rule_guards(match_spec: Any, pass_spec: Any | None) -> dict[str, frozenset[str]]:
    """What a rule needs to fail (`match`) or pass (`pass`, when it has one)."""
    if pass_spec is None:
        return guards_of(match_spec)
    return _either(guards_of(match_spec), guards_of(pass_spec))


@dataclass(frozen=True, slots=True)
class RuleGuards:
    """The rules of one event type, in pack order, each with its guards (see the module
    docstring); `paths`: every guarded field, resolved once per event."""

    rules: tuple[Rule, ...]
    guards: tuple[tuple[tuple[str, frozenset[str]], ...], ...]
    paths: tuple[str, ...]

    @classmethod
    def of(cls, rules: tuple[Rule, ...], guards: list[Guards]) -> RuleGuards:
        """`rules` with their guards (one mapping per rule, empty: always kept)."""
        paths = tuple(sorted({path for g in guards for path in g}))
        return cls(rules, tuple(tuple(sorted(g.items())) for g in guards), paths)

    def candidates(self, doc: Mapping[str, Any]) -> list[Rule]:
        """The rules whose every guarded field of `doc` (an event dict) holds a value allowed."""
        values = {path: first(doc, path) for path in self.paths}
        return [
            rule
            for rule, guards in zip(self.rules, self.guards, strict=True)
            if all(
                isinstance(value := values[path], str) and value in allowed
                for path, allowed in guards
            )
        ]
