"""Staged writes over a state mapping: read-your-writes now, apply to the table later.

The process agent sends an event's outputs and waits for the broker's acknowledgement before it
applies that event's state writes. A crash in between replays the event: its outputs go out
again (same deterministic ids, deduplicated downstream) instead of being lost.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

_DELETED = object()


class StagedState:
    """A read-through overlay of one mapping (a Faust table, or a dict offline)."""

    def __init__(self, base: MutableMapping[str, Any]) -> None:
        self.base = base
        self.pending: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """The staged value if any, else the stored one."""
        if key in self.pending:
            value = self.pending[key]
            return default if value is _DELETED else value
        value = self.base.get(key)
        return default if value is None else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.pending[key] = value

    def delete(self, key: str) -> None:
        """Stage the removal of `key`."""
        self.pending[key] = _DELETED

    def commit(self) -> int:
        """Apply every staged write to the base mapping; returns how many."""
        applied = len(self.pending)
        for key, value in self.pending.items():
            if value is _DELETED:
                if key in self.base:
                    del self.base[key]
            else:
                self.base[key] = value
        self.pending.clear()
        return applied

    def discard(self) -> None:
        """Forget the staged writes."""
        self.pending.clear()
