"""Paths into JSON values: nested keys (`dig`) and the dotted attribute paths events carry.

A dotted path names a leaf of a nested value (`ingress.0.cidr_blocks.1`), as Terraform events
write `changed_paths` and `after_unknown` and drift records write `paths`; `*` is the whole
value.
"""

from __future__ import annotations

from typing import Any


def dig(value: Any, *keys: str) -> Any:
    """`value[k1][k2]...`, or None when any step is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """The leaf paths of a JSON value with their values, keys sorted (empty containers and
    nulls are leaves)."""
    if isinstance(value, dict) and value:
        items: list[tuple[Any, Any]] = sorted(value.items())
    elif isinstance(value, list) and value:
        items = list(enumerate(value))
    else:
        return [(prefix or "*", value)]
    out: list[tuple[str, Any]] = []
    for key, item in items:
        out.extend(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def value_at(value: Any, path: str) -> Any:
    """The value at a dotted path, or None (a key may itself hold dots: longest key first)."""
    if path == "*":
        return value
    return _walk(value, path.split("."))


def is_under(path: str, prefixes: set[str]) -> bool:
    """Whether `path` is one of `prefixes` or lies beneath one (`*` covers every path)."""
    return any(path == p or path.startswith(p + ".") or p == "*" for p in prefixes)


def _walk(value: Any, parts: list[str]) -> Any:
    if not parts:
        return value
    if isinstance(value, dict):
        for end in range(len(parts), 0, -1):
            key = ".".join(parts[:end])
            if key in value:
                return _walk(value[key], parts[end:])
        return None
    if isinstance(value, list) and parts[0].isdigit():
        index = int(parts[0])
        return _walk(value[index], parts[1:]) if index < len(value) else None
    return None
