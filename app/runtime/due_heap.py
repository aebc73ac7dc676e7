"""The one timer heap every stage schedules on: entries `(due time, ...)`, earliest first.

Each stage keeps one per partition, in memory, and rebuilds it from its tables after a restart
or a rebalance (the `due` fields of alerts, groups and risk subjects, the open windows of a
series, the held events); an entry goes stale when its timer moves, and the stage checks a
popped entry against its stored state. They run on different clocks (a source's watermark for
windows, the partition clock less the slack for alerts, the partition clock for held events,
the risk clock for subjects), so a stage's heap is its own.
"""

from __future__ import annotations

import heapq
from typing import Any


class DueHeap:
    """Entries `(due, ...)` (e.g. `(due, key)`, or `(due, rank, key)` to order equal times)
    by the time they are due."""

    def __init__(self) -> None:
        self._heap: list[tuple[Any, ...]] = []

    def push(self, due: int, *rest: Any) -> None:
        """Schedule `(due, *rest)`."""
        heapq.heappush(self._heap, (due, *rest))

    def pop_due(self, clock: int | float) -> tuple[Any, ...] | None:
        """The earliest entry due at `clock`, or None."""
        if self._heap and self._heap[0][0] <= clock:
            return heapq.heappop(self._heap)
        return None

    def drain(self) -> list[tuple[Any, ...]]:
        """Every entry, earliest first; the heap is left empty."""
        items, self._heap = sorted(self._heap), []
        return items

    def __len__(self) -> int:
        return len(self._heap)
