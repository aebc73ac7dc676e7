"""OPA `# METADATA` annotations: what a Rego policy tells Vigil about itself.

An annotation is a comment block that starts with `# METADATA` and holds YAML, placed before
the `package` line (package scope) or before a rule (rule scope; Vigil reads the blocks before
`deny`, `warn` and `violation`, which refine the package's). Vigil reads OPA's `title` and
`description` and these `custom:` fields (all optional):

| field | meaning |
|---|---|
| `id` | rule id, the alert's `alertname` (default: the package, dots as dashes) |
| `severity` | info, low, medium (default), high, critical |
| `input` | `terraform` (plan JSON), `kubernetes` (Gatekeeper review), `event` (canonical event) |
| `types` / `sources` | event types (and sources) the policy reads: the prefilter |
| `resource_types` | `terraform` only: the resource types it reads (skips the others unevaluated) |
| `controls` | framework id -> control ids, as in the YAML pack |
| `approximate` | frameworks whose mapping is approximate |
| `pass` | a clean evaluation is a compliant observation (default: not for `event`) |
| `window_days` | how long posture fails after a violation when `pass` is off (default 30) |
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from app.model.events import SEVERITIES

INPUT_SHAPES = ("terraform", "kubernetes", "event")
#: Rules whose set of messages is a policy's decision (conftest's and Gatekeeper's names).
DECISION_RULES = ("deny", "violation", "warn")
CUSTOM_FIELDS = frozenset(
    {"id", "severity", "input", "types", "sources", "controls", "approximate", "pass"}
    | {"window_days", "resource_types"}
)
_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)\s*$", re.MULTILINE)
_RULE_START = re.compile(r"^(?:default\s+)?([A-Za-z_]\w*)\b")


class MetadataError(ValueError):
    """An annotation that cannot be read; the message names the line and the field."""


@dataclass(slots=True)
class PolicyMetadata:
    """What the annotations of one package say (package block, refined by rule blocks)."""

    title: str | None = None
    description: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)

    def merged(self, other: PolicyMetadata) -> PolicyMetadata:
        """`other` over `self`: a later block refines an earlier one."""
        return PolicyMetadata(
            title=other.title or self.title,
            description=other.description or self.description,
            custom={**self.custom, **other.custom},
        )


def package_of(source: str) -> str | None:
    """The module's package path (`data.<package>`), None when there is no package line."""
    match = _PACKAGE.search(source)
    return match.group(1) if match else None


def read_metadata(source: str) -> PolicyMetadata:
    """The package's annotations merged with those of its decision rules."""
    result = PolicyMetadata()
    lines = source.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() != "# METADATA":
            index += 1
            continue
        start = index + 1
        body: list[str] = []
        index = start
        while index < len(lines) and lines[index].lstrip().startswith("#"):
            text = lines[index].lstrip()[1:]
            body.append(text[1:] if text.startswith(" ") else text)
            index += 1
        target = lines[index].strip() if index < len(lines) else ""
        block = _parse_block("\n".join(body), start)
        scope = block.pop("scope", None)
        name_match = _RULE_START.match(target)
        name = name_match.group(1) if name_match else None
        package_scope = scope in ("package", "subpackages", "document")
        if target.startswith("package") or package_scope or name in DECISION_RULES:
            result = result.merged(_metadata(block, start))
    return result


def known_fields(
    value: Any, known: frozenset[str], what: str, error: type[ValueError]
) -> dict[str, Any]:
    """`value` when it is a mapping of known fields only; else `error` naming the first other."""
    if not isinstance(value, dict):
        raise error(f"{what} must be a mapping")
    unknown = sorted(set(value) - known)
    if unknown:
        raise error(f"{what}.{unknown[0]} is not supported (known: {', '.join(sorted(known))})")
    return value


def _parse_block(text: str, line: int) -> dict[str, Any]:
    where = f"METADATA at line {line}"
    try:
        block = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise MetadataError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(block, dict):
        raise MetadataError(f"{where}: must be a YAML mapping")
    return block


def _metadata(block: dict[str, Any], line: int) -> PolicyMetadata:
    where = f"METADATA at line {line}"
    custom = known_fields(
        block.get("custom") or {}, CUSTOM_FIELDS, f"{where}: custom", MetadataError
    )
    if "severity" in custom and custom["severity"] not in SEVERITIES:
        raise MetadataError(f"{where}: custom.severity must be one of {', '.join(SEVERITIES)}")
    if "input" in custom and custom["input"] not in INPUT_SHAPES:
        raise MetadataError(f"{where}: custom.input must be one of {', '.join(INPUT_SHAPES)}")
    for name in ("title", "description"):
        if name in block and not isinstance(block[name], str):
            raise MetadataError(f"{where}: '{name}' must be a string")
    return PolicyMetadata(block.get("title"), block.get("description"), dict(custom))
