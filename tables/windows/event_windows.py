"""Event-time windows with a watermark, a grace period and a deterministic close.

Faust's windowed tables expire by wall clock, close unreliably and never expire keys restored
from the changelog (faust-streaming#385), so Vigil keeps its own windows in plain table values:

- an event is assigned to windows by its own timestamp (tumbling when `hop_ms == size_ms`,
  hopping when `hop_ms < size_ms`);
- the watermark is the highest event time seen on the partition; a window `[start, end)` closes
  once `watermark >= end + grace_ms`, and its final value is emitted exactly then, once;
- an event whose windows have all closed is late: it is counted and sent to `vigil.late`;
- closed windows are dropped from state at once, so state stays bounded by the number of
  windows that can be open at the same time: `(size_ms + grace_ms) / hop_ms + 1` per series.

Everything here is pure: functions take the stored dict and return the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Window geometry in event time (milliseconds)."""

    size_ms: int
    hop_ms: int
    grace_ms: int

    def __post_init__(self) -> None:
        if self.size_ms <= 0 or self.hop_ms <= 0 or self.grace_ms < 0:
            raise ValueError("window size and hop must be positive, grace non-negative")
        if self.size_ms % self.hop_ms:
            raise ValueError("window size must be a multiple of the hop")

    @classmethod
    def tumbling(cls, size_ms: int, grace_ms: int) -> WindowSpec:
        """Adjacent, non-overlapping windows."""
        return cls(size_ms, size_ms, grace_ms)

    def starts_for(self, ts_ms: int) -> list[int]:
        """Start times of every window containing `ts_ms`, oldest first."""
        last = ts_ms - ts_ms % self.hop_ms
        first = last - self.size_ms + self.hop_ms
        return list(range(first, last + 1, self.hop_ms))

    def closes_at(self, start_ms: int) -> int:
        """The watermark at which the window starting at `start_ms` closes."""
        return start_ms + self.size_ms + self.grace_ms

    def max_open(self) -> int:
        """Upper bound on windows open at once for one series."""
        return (self.size_ms + self.grace_ms) // self.hop_ms + 1


def empty_aggregate() -> dict[str, float]:
    """The aggregate of no values."""
    return {"count": 0, "sum": 0.0, "min": None, "max": None}


def fold(aggregate: dict[str, Any], value: float) -> dict[str, Any]:
    """Add one value to a window aggregate (count, sum, min, max)."""
    low, high = aggregate["min"], aggregate["max"]
    return {
        "count": aggregate["count"] + 1,
        "sum": aggregate["sum"] + value,
        "min": value if low is None or value < low else low,
        "max": value if high is None or value > high else high,
    }


@dataclass(frozen=True, slots=True)
class Assignment:
    """The result of adding one event: the new windows state and whether it was late."""

    windows: dict[str, Any]
    late: bool
    opened: list[int]


def add_event(
    windows: dict[str, Any] | None, ts_ms: int, value: float, spec: WindowSpec, watermark: int
) -> Assignment:
    """Fold a value into every still-open window containing `ts_ms`.

    `windows` maps str(start) to aggregates. Windows already closed at `watermark` are skipped;
    when every window of the event is closed the event is late and nothing changes. `opened`
    lists windows created by this event (the caller schedules their close).
    """
    current = dict(windows or {})
    late = True
    opened: list[int] = []
    for start in spec.starts_for(ts_ms):
        if watermark >= spec.closes_at(start):
            continue
        late = False
        key = str(start)
        if key not in current:
            opened.append(start)
        current[key] = fold(current.get(key) or empty_aggregate(), value)
    return Assignment(current, late, opened)


def close_due(
    windows: dict[str, Any] | None, spec: WindowSpec, watermark: int
) -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]]]:
    """Split off every window closed at `watermark`: (remaining, [(start, final aggregate)]).

    Closed windows come out oldest first, so a detector fed from them sees event-time order.
    """
    remaining: dict[str, Any] = {}
    closed: list[tuple[int, dict[str, Any]]] = []
    for key, aggregate in (windows or {}).items():
        start = int(key)
        if watermark >= spec.closes_at(start):
            closed.append((start, aggregate))
        else:
            remaining[key] = aggregate
    closed.sort(key=lambda item: item[0])
    return remaining, closed


def advance_watermark(current: int | None, ts_ms: int) -> int:
    """The partition watermark after seeing an event at `ts_ms` (it never moves back)."""
    return ts_ms if current is None or ts_ms > current else current
