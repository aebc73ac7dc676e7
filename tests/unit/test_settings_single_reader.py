"""One settings object reads the environment: no module of app/, agents/ or tables/ but
app/settings/core.py reads `os.environ` or calls `os.getenv`; every variable it reads is
documented in README.md's settings table (or in the docs that table points to)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from app.settings import REPO_ROOT

PACKAGES = ("app", "agents", "tables")
#: The one reader: `Settings.from_env()`.
READER = "app/settings/core.py"
#: Modules allowed to touch the process environment, each with why. Building an environment
#: for a subprocess (`{**os.environ, ...}`) would belong here; nothing needs it today.
EXCEPTIONS: dict[str, str] = {}

#: Modules that define settings, and so name the variables to document.
SETTINGS_MODULES = (
    "app/settings/core.py",
    "app/settings/sinks.py",
    "app/settings/risk.py",
    "app/security.py",
    "app/topics.py",
)
#: Documents the README's settings table defers to, for groups it names with a wildcard.
DEFERRED_DOCS = ("docs/sinks.md", "docs/risk.md")
VARIABLE = re.compile(r"\b(?:VIGIL|WEB|APP|BROKER|PROCESSING)_[A-Z0-9_]*[A-Z0-9]\b")
#: Prefixes named in prose, not variables (`VIGIL_TOPIC_<LOGICAL>`, `VIGIL_KAFKA_*`, ...).
PREFIXES = {"VIGIL_TOPIC", "VIGIL_KAFKA", "VIGIL_RISK", "VIGIL_GATE", "VIGIL_SINK"}


def _environment_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """`os.environ`, `os.getenv`, `os.environb` and `from os import environ/getenv` in a tree."""
    names = {"environ", "environb", "getenv", "getenvb"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append((node.lineno, f"os.{node.attr}"))
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [
                (node.lineno, f"from os import {a.name}") for a in node.names if a.name in names
            ]
    return found


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO_ROOT / package).rglob("*.py"))


def test_only_the_settings_module_reads_the_environment():
    offenders = []
    for path in _modules():
        relative = path.relative_to(REPO_ROOT).as_posix()
        if relative == READER or relative in EXCEPTIONS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
        offenders += [f"{relative}:{line}: {what}" for line, what in _environment_reads(tree)]
    assert not offenders, "read settings from `Settings`, not the environment:\n" + "\n".join(
        offenders
    )


def test_the_reader_does_read_the_environment():
    tree = ast.parse((REPO_ROOT / READER).read_text(encoding="utf-8"))
    assert _environment_reads(tree), f"{READER} no longer reads os.environ: update this test"


def test_every_setting_is_documented():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Settings") :]
    table = table[: table.index("\n## ")]
    documented = table + "".join((REPO_ROOT / d).read_text(encoding="utf-8") for d in DEFERRED_DOCS)
    variables = {
        name
        for module in SETTINGS_MODULES
        for name in VARIABLE.findall((REPO_ROOT / module).read_text(encoding="utf-8"))
        if name not in PREFIXES
    }
    assert "VIGIL_METRICS_MAX_SERVICES" in variables  # the pattern still finds them
    missing = sorted(name for name in variables if f"`{name}`" not in documented)
    assert not missing, f"settings missing from README.md's settings table: {missing}"


def test_every_documented_variable_is_a_setting():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Settings") :]
    table = table[: table.index("\n## ")]
    code = "".join((REPO_ROOT / m).read_text(encoding="utf-8") for m in SETTINGS_MODULES)
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in VARIABLE.findall(row.split(" | ")[0])}
    unknown = sorted(name for name in named - PREFIXES if f'"{name}"' not in code)
    assert not unknown, f"README.md documents variables no setting reads: {unknown}"
