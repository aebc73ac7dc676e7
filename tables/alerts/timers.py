"""The alert stage's timers on the runtime's heap, rebuilt from the tables' `due` fields."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.runtime.due_heap import DueHeap

#: A watermark at or beyond this is "end of input" (`AlertStage.flush`).
FOREVER = 2**62
ALERT_RANK = 0  # alert and scope timers run before group flushes due at the same time
GROUP_RANK = 1


class TimerSchedule(DueHeap):
    """Timers `(due, rank, key)` for one partition.

    Alert and scope keys (table `alerts`) have rank 0, group keys (table `groups`) rank 1, so
    at equal times alert changes land before the flush that reports them. Entries go stale
    when a timer moves; the stage checks each popped entry against the state's `due`.
    """

    @classmethod
    def rebuild(cls, items: Iterable[tuple[str, Any]]) -> TimerSchedule:
        """A schedule from one partition's `(key, value)` items of the alerts and groups tables
        (chain both); each value's `t` says which table it belongs to."""
        schedule = cls()
        for key, value in items:
            if not isinstance(value, dict):
                continue
            due = value.get("due")
            if isinstance(due, int):
                rank = GROUP_RANK if value.get("t") == "group" else ALERT_RANK
                schedule.push(due, rank, key)
        return schedule
