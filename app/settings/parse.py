"""Typed reads of one environment variable, each raising ValueError that names the variable.

They take the environment as a mapping: only `Settings.from_env` (app/settings/core.py) hands
them the process environment.
"""

from __future__ import annotations

from collections.abc import Mapping


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    """The variable as given, else `default`."""
    return env.get(name, default)


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    """An integer; unset or empty: `default`."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    """A number; unset or empty: `default`."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """`1/true/yes/on` or `0/false/no/off` (any case); unset or empty: `default`."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be a boolean (true/false), got {raw!r}")
