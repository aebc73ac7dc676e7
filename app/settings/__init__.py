"""Vigil's settings: one object, `Settings`, read from the environment (app/settings/core.py)."""

from app.settings.core import REPO_ROOT, Settings

__all__ = ["REPO_ROOT", "Settings"]
