"""The token formats of app/rules/secrets.toml (gitleaks' default rules, in Python `re`) as
masking steps."""

from __future__ import annotations

import functools
import re
import tomllib
from pathlib import Path
from typing import Any

from app.masking.steps import MASK, _Step

#: The token-format rules (see the file's header for its fields and provenance).
RULES_PATH = Path(__file__).parents[1] / "rules" / "secrets.toml"


def _rule_step(rule: dict[str, Any]) -> _Step:
    """A step from one rule of app/rules/secrets.toml."""
    flags = re.S if "s" in rule.get("flags", "") else 0
    pattern = re.compile(rule["regex"], flags)
    fixed = rule.get("replacement")
    label = f"[{rule['label']}]" if rule.get("label") else ""
    keeps = "keep" in pattern.groupindex

    def replace(match: re.Match[str]) -> str:
        if fixed is not None:
            return fixed
        keep = (match.group("keep") or "") if keeps else ""
        return f"{keep}{MASK}{label}"

    keywords = tuple(rule.get("keywords", ()))
    exact = bool(rule.get("exact", False))
    return _Step(
        rule["id"],
        functools.partial(pattern.sub, replace),
        any_case=() if exact else tuple(k.lower() for k in keywords),
        exact=keywords if exact else (),
        runs=tuple(rule.get("runs", ())),
    )


def load_rules(path: Path = RULES_PATH) -> tuple[_Step, ...]:
    """The token-format steps of a rules file, in file order."""
    with path.open("rb") as file:
        return tuple(_rule_step(rule) for rule in tomllib.load(file)["rules"])
