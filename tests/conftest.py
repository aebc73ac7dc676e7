"""Shared test fixtures: where the read-only sample data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings


def _shared_dir() -> Path:
    return Path(Settings.from_env().shared_dir)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop before collection (some test modules read the fixtures at import) when the shared
    data is not there, with what to do about it."""
    path = _shared_dir()
    if not path.is_dir():
        pytest.exit(
            f"shared data not found at {path}: clone beside ../shared or set VIGIL_SHARED_DIR",
            returncode=4,
        )


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` (or `VIGIL_SHARED_DIR`): fixtures and NAB data, read in place."""
    return _shared_dir()


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    """`shared/fixtures`: real sample files written by the tools themselves."""
    return shared_dir / "fixtures"
