"""Shared test fixtures: where the read-only sample data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` (or `VIGIL_SHARED_DIR`): fixtures and NAB data, read in place."""
    path = Path(Settings.from_env().shared_dir)
    assert path.is_dir(), f"shared data not found at {path}; set VIGIL_SHARED_DIR"
    return path


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    """`shared/fixtures`: real sample files written by the tools themselves."""
    return shared_dir / "fixtures"
