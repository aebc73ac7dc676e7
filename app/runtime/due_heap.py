"""A min-heap of `(due time, key)`: the in-memory timer schedules the stages rebuild from their
tables after a restart (tables/risk/stage.py subjects, app/runtime/held.py held events)."""

from __future__ import annotations

import heapq


class DueHeap:
    """Keys by the time they are due; stale entries are left for the caller to recognise
    against its stored state."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []

    def push(self, due: int, key: str) -> None:
        heapq.heappush(self._heap, (due, key))

    def pop_due(self, clock: int | float) -> tuple[int, str] | None:
        """The earliest `(due, key)` due at `clock`, or None."""
        if self._heap and self._heap[0][0] <= clock:
            return heapq.heappop(self._heap)
        return None

    def drain(self) -> list[tuple[int, str]]:
        """Every entry, earliest first; the heap is left empty."""
        items, self._heap = sorted(self._heap), []
        return items

    def __len__(self) -> int:
        return len(self._heap)
