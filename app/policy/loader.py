"""Load a policy set: Rego files and Gatekeeper YAML from directories, proven to work.

`load_policies(paths)` reads every `.rego`, `.yaml` and `.yml` file under the paths (sorted,
so every worker builds the same set) and returns a `PolicySet`, or raises PolicyError naming
the file and the cause when:

- a file does not parse, or uses v0-only syntax (a rule body without `if`: rego-cpp would load
  it as something else and it would silently yield nothing);
- a package defines no `deny` / `warn` / `violation` rule (and is no library another module
  imports), or one of them does not evaluate to a set of messages on an empty input;
- its METADATA, a ConstraintTemplate or a Constraint is invalid, two policies share an id;
- any `test_*` rule of the set is not true (`run_tests`; OPA's convention).

Files named `*_test.rego` are loaded for the tests only: evaluation never sees them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml

from app.model.events import SEVERITIES
from app.policy.engine import UNDEFINED, RegoEngine, RegoError, v0_constructs
from app.policy.gatekeeper import (
    Constraint,
    GatekeeperError,
    Template,
    constraint_metadata,
    is_constraint,
    is_template,
    parse_constraint,
    parse_template,
)
from app.policy.inputs import admission_review, terraform_input
from app.policy.metadata import (
    DECISION_RULES,
    MetadataError,
    PolicyMetadata,
    package_of,
    read_metadata,
)

log = logging.getLogger(__name__)

POLICY_SUFFIXES = (".rego", ".yaml", ".yml")
#: Event types each input shape reads unless the METADATA says otherwise.
DEFAULT_TYPES = {"terraform": ("tf_change",), "kubernetes": ("k8s_audit",)}
_RULE_NAME = re.compile(r"^(?:default\s+)?(" + "|".join(DECISION_RULES) + r")\b", re.MULTILINE)
_TEST_NAME = re.compile(r"^(test_\w+)\b", re.MULTILINE)
_ID_CHARS = re.compile(r"[^a-z0-9-]+")
#: What rego-cpp's `with` failure means for the author (docs/drift.md, "Testing a policy").
WITH_HINT = (
    " (rego-cpp cannot evaluate `with` over rules that call built-ins, and a module holding"
    " such a rule breaks every query: move tests into *_test.rego files)"
)


class PolicyError(ValueError):
    """A policy set that cannot be loaded; the message names the file and the cause."""


@dataclass(frozen=True, slots=True)
class Module:
    """One Rego module: its file (or `file#template`), package and source."""

    name: str
    package: str
    source: str
    test_only: bool


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy: a Rego package (or a Gatekeeper constraint) and what it maps to."""

    id: str
    package: str
    file: str
    shape: str
    title: str
    severity: str
    types: frozenset[str]
    decisions: tuple[str, ...]
    custom: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    sources: frozenset[str] | None = None
    constraint: Constraint | None = None

    @property
    def entrypoints(self) -> tuple[str, ...]:
        """The decision rules as bundle entrypoints (`pkg/path/deny`)."""
        path = self.package.replace(".", "/")
        return tuple(f"{path}/{decision}" for decision in self.decisions)

    @property
    def pass_when_clean(self) -> bool:
        return bool(self.custom.get("pass", self.shape != "event"))

    def input_of(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The policy's input for an event dict, None when the policy does not apply to it."""
        if self.shape == "terraform":
            wanted = self.custom.get("resource_types")
            if wanted and (event.get("attributes") or {}).get("resource_type") not in wanted:
                return None
            return terraform_input(event)
        if self.shape == "kubernetes":
            review = admission_review(event)
            if review is None or self.constraint is None or not self.constraint.matches(review):
                return None
            return {"review": review, "parameters": self.constraint.parameters}
        return event


@dataclass(slots=True)
class PolicySet:
    """Loaded policies and the engine that evaluates them."""

    policies: tuple[Policy, ...]
    engine: RegoEngine
    files: tuple[str, ...]
    digest: str
    tests: int = 0
    modules: tuple[Module, ...] = ()
    _failed: set[str] = field(default_factory=set)

    def messages(self, policy: Policy, document: Any) -> tuple[str, ...]:
        """The sorted, distinct messages of the policy's decision rules for `document`."""
        found: set[str] = set()
        for entrypoint in policy.entrypoints:
            value = self.engine.evaluate(entrypoint, document)
            if isinstance(value, list):
                found.update(message_text(item) for item in value)
        return tuple(sorted(found))

    def check(self, policy: Policy, event: dict[str, Any]) -> tuple[str, ...] | None:
        """Messages for a canonical event dict, () when clean, None when not applicable (or
        when evaluation fails: logged once per policy, the pipeline goes on)."""
        document = policy.input_of(event)
        if document is None:
            return None
        try:
            return self.messages(policy, document)
        except RegoError as exc:
            if policy.id not in self._failed:
                self._failed.add(policy.id)
                log.error("policy %s (%s) failed to evaluate: %s", policy.id, policy.file, exc)
            return None


def message_text(item: Any) -> str:
    """A decision's message: a string, Gatekeeper's `{"msg": ...}`, or compact JSON."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and isinstance(item.get("msg"), str):
        return item["msg"]
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode()


def bundled_policy_dir() -> Path:
    """`app/rules/policies/`, the pack Vigil ships."""
    return Path(str(resources.files("app") / "rules" / "policies"))


def policy_files(paths: Iterable[str | Path]) -> list[Path]:
    """The policy files under `paths` (files as given, directories walked), sorted."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in POLICY_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise PolicyError(f"{path}: no such file or directory")
    return files


def load_policies(paths: Sequence[str | Path], run_tests: bool = True) -> PolicySet:
    """Load, check and (by default) test the policies under `paths` (see the module doc)."""
    files = policy_files(paths)
    modules: list[Module] = []
    templates: dict[str, tuple[Template, str]] = {}
    constraints: list[tuple[Constraint, str]] = []
    digest = hashlib.sha256()
    for path in files:
        text = _read(path)
        digest.update(str(path.name).encode() + b"\0" + text.encode() + b"\0")
        if path.suffix == ".rego":
            modules.append(_module(str(path), text, path.name.endswith("_test.rego")))
            continue
        for doc in _yaml_documents(path, text):
            try:
                if is_template(doc):
                    template = parse_template(doc)
                    templates[template.kind] = (template, str(path))
                    for index, source in enumerate(template.rego):
                        name = f"{path}#{template.name}" + (f".lib{index}" if index else "")
                        modules.append(_module(name, source, False))
                elif is_constraint(doc):
                    constraints.append((parse_constraint(doc), str(path)))
                else:
                    raise GatekeeperError(
                        f"kind {doc.get('kind')!r} is neither a ConstraintTemplate nor a Constraint"
                    )
            except GatekeeperError as exc:
                raise PolicyError(f"{path}: {exc}") from None
    engine = RegoEngine()
    for module in modules:
        if not module.test_only:
            _load(engine, module)
    policies = _rego_policies(modules, templates) + _constraint_policies(
        constraints, templates, modules
    )
    _check_ids(policies)
    for policy in policies:
        _check_decisions(engine, policy)
    _compile(engine, policies)
    tests = run_policy_tests(modules) if run_tests else []
    failures = [t for t in tests if t[2] != "pass"]
    if failures:
        raise PolicyError(
            "policy tests failed: "
            + "; ".join(f"{name} ({file}): {status}" for file, name, status in failures)
        )
    paths_read = tuple(map(str, files))
    return PolicySet(
        tuple(policies), engine, paths_read, digest.hexdigest(), len(tests), tuple(modules)
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read: {exc}") from None


def _yaml_documents(path: Path, text: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    if not all(isinstance(d, dict) for d in docs):
        raise PolicyError(f"{path}: every YAML document must be a mapping")
    return docs


def _module(name: str, source: str, test_only: bool) -> Module:
    package = package_of(source)
    if package is None:
        raise PolicyError(f"{name}: no 'package' line")
    v0 = v0_constructs(source)
    if v0:
        line, text = v0[0]
        raise PolicyError(
            f"{name}:{line}: v0 Rego syntax ({text!r}): rule bodies need 'if' and partial "
            "sets 'contains' (Rego v1, OPA 1.x); the engine would read this rule differently"
        )
    probe = RegoEngine()  # parse each module alone, so an error names its own file
    try:
        probe.load_module(name, source)
    except RegoError as exc:
        raise PolicyError(f"{name}: does not parse: {exc}") from None
    return Module(name, package, source, test_only)


def _load(engine: RegoEngine, module: Module) -> None:
    try:
        engine.load_module(module.name, module.source)
    except RegoError as exc:
        raise PolicyError(f"{module.name}: {exc}") from None


def _decisions(modules: Iterable[Module]) -> tuple[str, ...]:
    found = {m.group(1) for module in modules for m in _RULE_NAME.finditer(module.source)}
    return tuple(d for d in DECISION_RULES if d in found)


def _metadata_of(modules: Iterable[Module]) -> PolicyMetadata:
    merged = PolicyMetadata()
    for module in modules:
        try:
            merged = merged.merged(read_metadata(module.source))
        except MetadataError as exc:
            raise PolicyError(f"{module.name}: {exc}") from None
    return merged


def _rego_policies(
    modules: list[Module], templates: dict[str, tuple[Template, str]]
) -> list[Policy]:
    """One policy per package of plain `.rego` files that has decision rules."""
    template_packages = {package_of(t.rego[0]) for t, _ in templates.values()}
    by_package: dict[str, list[Module]] = {}
    for module in modules:
        if not module.test_only and "#" not in module.name:
            by_package.setdefault(module.package, []).append(module)
    policies = []
    for package, members in sorted(by_package.items()):
        decisions = _decisions(members)
        if not decisions:
            if not _imported(package, modules) and package not in template_packages:
                raise PolicyError(
                    f"{members[0].name}: package '{package}' defines no deny, warn or violation "
                    "rule (and no other module imports it as a library)"
                )
            continue
        meta = _metadata_of(members)
        policies.append(_policy(meta, package, members[0].name, decisions, None))
    return policies


def _imported(package: str, modules: list[Module]) -> bool:
    pattern = re.compile(r"\bdata\." + re.escape(package) + r"\b")
    return any(m.package != package and pattern.search(m.source) for m in modules)


def _constraint_policies(
    constraints: list[tuple[Constraint, str]],
    templates: dict[str, tuple[Template, str]],
    modules: list[Module],
) -> list[Policy]:
    policies = []
    for constraint, file in constraints:
        if constraint.kind not in templates:
            raise PolicyError(
                f"{file}: {constraint.kind} '{constraint.name}': no ConstraintTemplate "
                f"defines kind {constraint.kind!r}"
            )
        template, template_file = templates[constraint.kind]
        package = package_of(template.rego[0]) or ""
        members = [m for m in modules if m.name.startswith(f"{template_file}#{template.name}")]
        decisions = _decisions(members[:1])
        if not decisions:
            raise PolicyError(
                f"{template_file}: ConstraintTemplate '{template.name}' defines no violation rule"
            )
        meta = _metadata_of(members[:1])
        try:
            extra = constraint_metadata(constraint, template)
        except GatekeeperError as exc:
            raise PolicyError(f"{file}: {constraint.kind} '{constraint.name}': {exc}") from None
        title = extra.pop("title", None)
        meta = meta.merged(PolicyMetadata(title=title, custom={**extra, "input": "kubernetes"}))
        meta.custom.setdefault("id", constraint.name)
        policies.append(_policy(meta, package, file, decisions, constraint))
    return policies


def _policy(
    meta: PolicyMetadata,
    package: str,
    file: str,
    decisions: tuple[str, ...],
    constraint: Constraint | None,
) -> Policy:
    custom = dict(meta.custom)
    label = f"{file}: package '{package}'"
    raw_id = custom.get("id") or package.replace(".", "-").replace("_", "-")
    policy_id = _ID_CHARS.sub("-", str(raw_id).lower()).strip("-")
    shape = custom.get("input") or _infer_shape(package, file)
    types = custom.get("types") or DEFAULT_TYPES.get(shape)
    if not types:
        raise PolicyError(f"{label}: an 'event' policy must declare custom.types (event types)")
    if isinstance(types, str):
        types = [types]
    severity = custom.get("severity", "medium")
    if severity not in SEVERITIES:
        raise PolicyError(f"{label}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    sources = custom.get("sources")
    return Policy(
        id=policy_id,
        package=package,
        file=file,
        shape=shape,
        title=meta.title or f"Policy {package}",
        severity=severity,
        types=frozenset(map(str, types)),
        decisions=decisions,
        custom=custom,
        description=meta.description or "",
        sources=frozenset([sources] if isinstance(sources, str) else sources) if sources else None,
        constraint=constraint,
    )


def _infer_shape(package: str, file: str) -> str:
    """Without `custom.input`: conftest's `main` package reads plans, anything else must say."""
    if package == "main" or package.startswith("main."):
        return "terraform"
    raise PolicyError(
        f"{file}: package '{package}' needs METADATA custom.input (terraform, kubernetes or "
        "event): only conftest's default package 'main' is taken to read Terraform plans"
    )


def _check_ids(policies: list[Policy]) -> None:
    seen: dict[str, str] = {}
    for policy in policies:
        if policy.id in seen:
            raise PolicyError(
                f"{policy.file}: policy id '{policy.id}' is also used by {seen[policy.id]}"
            )
        seen[policy.id] = policy.file


def _check_decisions(engine: RegoEngine, policy: Policy) -> None:
    """Every decision rule must evaluate to a set (a JSON list) on an empty input."""
    empty = _empty_input(policy)
    for decision in policy.decisions:
        try:
            value = engine.query(f"data.{policy.package}.{decision}", empty)
        except RegoError as exc:
            hint = WITH_HINT if "rego-localref" in str(exc) or "rego-with" in str(exc) else ""
            raise PolicyError(
                f"{policy.file}: {policy.package}.{decision} cannot be evaluated: {exc}{hint}"
            ) from None
        if isinstance(value, dict):
            raise PolicyError(
                f"{policy.file}: {policy.package}.{decision} evaluates to an object, not a set: "
                "v0 partial-set syntax (write 'deny contains msg if { ... }')"
            )
        if value is UNDEFINED or not isinstance(value, list):
            raise PolicyError(
                f"{policy.file}: {policy.package}.{decision} must be a set of messages "
                f"('{decision} contains msg if {{ ... }}'), got {value!r}"
            )


def _compile(engine: RegoEngine, policies: list[Policy]) -> None:
    """Compile the decision rules into one bundle and check it agrees with the interpreter on
    an empty input (rego-cpp builds what it just evaluated; a disagreement is an engine bug)."""
    entrypoints = sorted({e for policy in policies for e in policy.entrypoints})
    if not entrypoints:
        return
    try:
        engine.compile(entrypoints)
        for policy in policies:
            empty = _empty_input(policy)
            for entrypoint in policy.entrypoints:
                compiled = engine.evaluate(entrypoint, empty)
                interpreted = engine.query("data." + entrypoint.replace("/", "."), empty)
                if compiled != interpreted:
                    raise RegoError(f"{entrypoint}: bundle gives {compiled!r}, not {interpreted!r}")
    except RegoError as exc:
        raise PolicyError(f"{policies[0].file}: the policy set does not compile: {exc}") from None


def _empty_input(policy: Policy) -> dict[str, Any]:
    return {"review": {}, "parameters": {}} if policy.shape == "kubernetes" else {}


def run_policy_tests(modules: Sequence[Module]) -> list[tuple[str, str, str]]:
    """(file, test, `pass` | `fail` | `error: ...`) for every `test_*` rule, OPA's way: a test
    passes when it is true. Runs on its own engine holding the test files too."""
    engine = RegoEngine()
    for module in modules:
        _load(engine, module)
    results = []
    for module in modules:
        for name in dict.fromkeys(_TEST_NAME.findall(module.source)):
            try:
                value = engine.query(f"data.{module.package}.{name}", {})
            except RegoError as exc:
                results.append((module.name, f"{module.package}.{name}", f"error: {exc}"))
                continue
            status = "pass" if value is True else "fail"
            results.append((module.name, f"{module.package}.{name}", status))
    return results
