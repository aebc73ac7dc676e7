"""Import layering, read from the source with `ast`: the domain (tables/) imports no adapter
(app/sources/), and the event model (app/model/) imports nothing of Vigil but itself."""

from __future__ import annotations

import ast
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
