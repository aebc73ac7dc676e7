"""Batch processing helpers for agents whose tables are written after outputs are confirmed.

Faust writes a table key to the changelog partition of the *current event* and reads it from
that partition's store; when a batch spans partitions, the agent must make each event current
while it is processed and committed. faust-streaming 0.15.3 keeps the current event in the
context variable `faust.streams._current_event` (private; pinned version).
"""

from __future__ import annotations

import weakref
from typing import Any

from faust.streams import _current_event


def make_current(event: Any) -> None:
    """Make `event` Faust's current event (table reads and changelog writes follow it)."""
    _current_event.set(weakref.ref(event))
