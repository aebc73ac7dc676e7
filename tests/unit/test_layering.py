"""Layering, read from the source with `ast`: the domain (tables/) imports no adapter
(app/sources/); the event model (app/model/) imports nothing of Vigil but itself; each
capability (tables/<capability>/) imports the vocabulary, the runtime's state helpers, its own
package and the exceptions listed with their reasons; no module is over 600 lines; no domain
function takes a partition or an offset, and the runtime's offset names stay in app/runtime/;
faust is imported only by the Faust wiring, the agents and the runtime; the runtime imports no
capability, adapter or agent."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(source: str, package: str) -> set[str]:
    """Every module `source` imports, at any depth; relative imports resolved from `package`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: max(0, package.count(".") + 2 - node.level)]
                base = ".".join(p for p in (*parents, base) if p)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def violations(folder: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    """`<file> imports <module>` for every import under `folder` of a `forbidden` package
    (unless it lies in an `allowed` one)."""
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"no modules under {folder}"
    out = []
    for path in files:
        package = ".".join(path.relative_to(ROOT).parts[:-1])
        for module in sorted(imported_modules(path.read_text(encoding="utf-8"), package)):
            if _within(module, forbidden) and not _within(module, allowed):
                out.append(f"{path.relative_to(ROOT)} imports {module}")
    return out


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@pytest.mark.parametrize(
    ("folder", "forbidden", "allowed"),
    [
        ("tables", ("app.sources",), ()),
        ("app/model", ("app", "agents", "tables"), ("app.model",)),
    ],
)
def test_layering(folder: str, forbidden: tuple[str, ...], allowed: tuple[str, ...]):
    assert violations(folder, forbidden, allowed) == []


def test_imports_are_found_at_any_depth_and_relative_ones_resolved():
    source = (
        "import orjson\n"
        "def f():\n"
        "    from app.sources import trivy\n"
        "    import app.sources.k8s_audit as audit\n"
        "from . import paths\n"
        "from ..sources.base import optional\n"
    )
    assert imported_modules(source, "app.model") == {
        "orjson",
        "app.sources",
        "app.sources.trivy",
        "app.sources.k8s_audit",
        "app.model",
        "app.model.paths",
        "app.sources.base",
        "app.sources.base.optional",
    }


# ---- capabilities: tables/<capability>/ ----------------------------------------------------

#: What any capability may import besides the stdlib, third-party libraries (never faust) and
#: its own package: the vocabulary and the runtime's pure state helpers.
CAPABILITY_BASE = (
    "app.model",
    "app.model.events",
    "app.dead_letters",
    "app.runtime.staged",
    "app.runtime.spill",
    "app.runtime.due_heap",
)

#: Every other Vigil import a capability makes, each with its reason.
CAPABILITY_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("compliance", "app.masking"): "drift masks desired and observed values in its outputs",
    ("compliance", "app.policy"): "Rego policies become compliance rules (policy_rules.py)",
    ("control", "tables.alerts.silences"): "control commands create and expire silences",
    ("windows", "tables.anomaly"): "a closed window's value is scored by the anomaly detectors",
}

#: Packages of tables/ that are not a capability: the Faust wiring of state.
NOT_CAPABILITIES = {"definitions"}

VIGIL = ("app", "agents", "tables")


def capabilities() -> list[str]:
    """The capability packages under tables/."""
    return sorted(p.name for p in (ROOT / "tables").iterdir() if (p / "__init__.py").is_file())


def capability_violations(capability: str) -> list[str]:
    """`<file> imports <module>` for every import a capability may not make."""
    own = f"tables.{capability}"
    allowed = (
        own,
        *CAPABILITY_BASE,
        *(module for (cap, module) in CAPABILITY_EXCEPTIONS if cap == capability),
    )
    out = []
    for path in sorted((ROOT / "tables" / capability).rglob("*.py")):
        package = ".".join(path.relative_to(ROOT).parts[:-1])
        for module in sorted(imported_modules(path.read_text(encoding="utf-8"), package)):
            vigil = _within(module, VIGIL) and not _parent_of(module, allowed)
            if (vigil and not _within(module, allowed)) or _within(module, ("faust",)):
                out.append(f"{path.relative_to(ROOT)} imports {module}")
    return out


def _parent_of(module: str, packages: tuple[str, ...]) -> bool:
    """Whether `module` is a package above an allowed one (`from app.runtime import spill`)."""
    return any(p.startswith(module + ".") for p in packages)


def test_tables_holds_one_package_per_capability_and_the_faust_wiring():
    modules = sorted(p.stem for p in (ROOT / "tables").glob("*.py") if p.stem != "__init__")
    assert modules == sorted(NOT_CAPABILITIES)
    assert {"alerts", "anomaly", "compliance", "risk", "windows"} <= set(capabilities())


@pytest.mark.parametrize("capability", capabilities())
def test_a_capability_imports_the_vocabulary_its_package_and_listed_exceptions(capability):
    assert capability_violations(capability) == []


def test_every_listed_exception_is_used():
    """An exception nobody needs any more is dropped from the list."""
    for (capability, module), reason in CAPABILITY_EXCEPTIONS.items():
        assert reason
        imports = set()
        for path in (ROOT / "tables" / capability).rglob("*.py"):
            package = ".".join(path.relative_to(ROOT).parts[:-1])
            imports |= imported_modules(path.read_text(encoding="utf-8"), package)
        assert any(_within(found, (module,)) for found in imports), (capability, module)


def test_no_module_is_over_600_lines():
    too_long = []
    for folder in ("app", "agents", "tables"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").count("\n")
            if lines > 600:
                too_long.append(f"{path.relative_to(ROOT)}: {lines}")
    assert too_long == []


def test_no_domain_function_takes_a_partition_or_an_offset():
    found = []
    for capability in capabilities():
        for path in sorted((ROOT / "tables" / capability).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    args = node.args
                    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
                    found += [
                        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({name})"
                        for name in names
                        if name in ("partition", "offset")
                    ]
    assert found == []


#: The runtime's own names for offsets and replays (journal fields, staged markers).
RUNTIME_NAMES = re.compile(r"\b_(o|oi|replayed)\b")


def test_offset_bookkeeping_names_stay_in_the_runtime():
    found = []
    for folder in ("app", "agents", "tables", "scripts", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.is_relative_to(ROOT / "app" / "runtime"):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if RUNTIME_NAMES.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}")
    assert found == []


# ---- faust: the wiring, the agents and the runtime -------------------------------------------

#: Where faust may be imported besides agents/ and app/runtime/: the Faust wiring (the app,
#: its topics, tables, codecs, credentials, logging, monitor) and the web view it serves.
FAUST_WIRING = (
    "app/faust_app.py",
    "app/faust_topics.py",
    "app/codecs.py",
    "app/security.py",
    "app/worker_logging.py",
    "app/metrics/faust_sensor.py",
    "app/web/",
    "tables/definitions.py",
)


def test_faust_is_imported_only_by_the_wiring_the_agents_and_the_runtime():
    found = []
    for folder in ("app", "agents", "tables"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if name.startswith(("agents/", "app/runtime/", *FAUST_WIRING)):
                continue
            package = ".".join(path.relative_to(ROOT).parts[:-1])
            modules = imported_modules(path.read_text(encoding="utf-8"), package)
            found += [f"{name} imports {m}" for m in sorted(modules) if _within(m, ("faust",))]
    assert found == []


# ---- the runtime imports no capability -------------------------------------------------------

#: What app/runtime/ may import of Vigil: the event model, itself, the settings, the metrics it
#: counts in and the Faust wiring it drives; never a capability, an adapter or an agent.
RUNTIME_ALLOWED = (
    "app.model",
    "app.runtime",
    "app.settings",
    "app.metrics",
    "app.faust_app",
    "app.faust_topics",
    "app.codecs",
)


def test_the_runtime_imports_no_capability_adapter_or_agent():
    found = []
    for path in sorted((ROOT / "app" / "runtime").rglob("*.py")):
        package = ".".join(path.relative_to(ROOT).parts[:-1])
        for module in sorted(imported_modules(path.read_text(encoding="utf-8"), package)):
            vigil = _within(module, VIGIL) and not _parent_of(module, RUNTIME_ALLOWED)
            if vigil and not _within(module, RUNTIME_ALLOWED):
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    assert found == []
