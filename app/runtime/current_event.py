"""Faust's current event, set by hand for agents that process a batch of events.

Faust writes a table key to the changelog partition of the *current event* and, with RocksDB,
reads it from that partition's store only. An agent that handles a batch spanning partitions
must make each event current while it is processed, and one event of a partition current while
that partition's writes are applied. faust-streaming 0.15.3 keeps the current event in the
context variable `faust.streams._current_event` (private; the version is pinned).
"""

from __future__ import annotations

import weakref
from typing import Any

from faust.streams import _current_event


def make_current(event: Any) -> None:
    """Make `event` Faust's current event (table reads and changelog writes follow it)."""
    _current_event.set(weakref.ref(event))
