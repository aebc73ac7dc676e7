"""How far the ingest agent has read each raw partition: what clock ticks report to every
`vigil.events` partition, so a partition clock never takes a source with records still
waiting for idle (app/runtime/partition_clock.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


class RawProgress:
    """Per raw partition this worker reads: the newest event time it sent (`W`) and the next
    offset to handle. Updated only after the events were handed to the producer, so a tick
    sent later lands after them on every `vigil.events` partition."""

    def __init__(self) -> None:
        self._marks: dict[tuple[str, int], int] = {}
        self._next: dict[tuple[str, int], int] = {}

    def observe(self, topic: str, partition: int, offset: int, event_ms: int | None) -> None:
        """The record at `offset` was handled; its events (if any) went up to `event_ms`."""
        tp = (topic, partition)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)
        if event_ms is not None:
            self._marks[tp] = max(self._marks.get(tp, event_ms), event_ms)

    def forget(self) -> None:
        """Partitions may move: what a new assignment reads is tracked from scratch."""
        self._marks.clear()
        self._next.clear()

    def backlog(
        self,
        assigned: Iterable[tuple[str, int]],
        highwater: Callable[[tuple[str, int]], int | None],
        committed: Callable[[tuple[str, int]], int | None],
    ) -> int:
        """Records left to read in the `assigned` raw partitions (an unknown highwater counts
        none), from the same offsets as `report`."""
        left = 0
        for tp in assigned:
            end = highwater(tp)
            if end is not None and end >= 0:
                left += max(0, end - self._start(tp, committed))
        return left

    def report(
        self,
        assigned: Iterable[tuple[str, int]],
        highwater: Callable[[tuple[str, int]], int | None],
        committed: Callable[[tuple[str, int]], int | None],
    ) -> dict[str, dict[str, list[Any]]]:
        """`{topic: {partition: [W, waiting]}}` for the `assigned` raw partitions. A partition
        is waiting while records are left in it: the next offset to handle (after the
        `committed` one when nothing was handled since the assignment) is below its
        `highwater`, or the highwater is not known yet."""
        report: dict[str, dict[str, list[Any]]] = {}
        for tp in assigned:
            end = highwater(tp)
            waiting = end is None or end < 0 or self._start(tp, committed) < end
            report.setdefault(tp[0], {})[str(tp[1])] = [self._marks.get(tp), waiting]
        return report

    def _start(
        self, tp: tuple[str, int], committed: Callable[[tuple[str, int]], int | None]
    ) -> int:
        """The next offset to handle in `tp`: after the last handled record, or the
        `committed` offset when nothing was handled since the assignment."""
        start = self._next.get(tp)
        return (committed(tp) or 0) if start is None else start
