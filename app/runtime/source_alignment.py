"""Source alignment: keep the raw partitions within a bound of each other in event time.

A worker reading a backlog fetches each raw partition at its own pace: in one `make chaos` run
the logs topic was an hour of event time behind the others. Every clock that waits for all
sources (app/runtime/partition_clock.py, and through it the risk clock) then waits for the slowest,
and what waits with it (events held for drift and compliance, alert inputs, risk signals)
piles up until the bounds overflow, after which outputs follow the arrival order again.

So the ingest agent pauses fetching from a raw partition whose newest event time is more than
`max_drift_ms` ahead of the slowest partition still sending (Flink's watermark alignment), and
resumes it once the slowest caught up. A partition read to its end, or that sent nothing for
`idle_ms` (its source went quiet), no longer counts as the slowest; a partition is never kept
paused longer than `max_pause_ms` in a row, so a source whose clock runs ahead of the others
for good still moves (at worst at half speed). Alignment only changes the order records are
read in; outputs are decided by the clocks and do not depend on it.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Source:
    newest_ms: int
    seen_at: float
    paused_at: float | None = None
    resumed_at: float | None = None


@dataclass(slots=True)
class SourceAlignment:
    """Which raw partitions to pause and resume (all times: event time in ms; `now`: seconds
    of a monotonic wall clock)."""

    max_drift_ms: int
    idle_s: float
    max_pause_s: float
    _sources: dict[Hashable, _Source] = field(default_factory=dict)

    def observe(self, source: Hashable, event_ms: int, now: float) -> None:
        """A record of `source` with events up to `event_ms` was read at `now`."""
        known = self._sources.get(source)
        if known is None:
            self._sources[source] = _Source(event_ms, now)
        else:
            known.newest_ms = max(known.newest_ms, event_ms)
            known.seen_at = now

    def forget(self) -> None:
        """Partitions were reassigned: start over (nothing is paused any more)."""
        self._sources.clear()

    def decide(
        self, now: float, caught_up: Collection[Hashable] = ()
    ) -> tuple[list[Hashable], list[Hashable]]:
        """The sources to pause and the sources to resume now. `caught_up`: sources whose
        every record was read (nothing more to send now): they hold nobody back, without
        waiting for the idle time."""
        sending = [
            s.newest_ms
            for name, s in self._sources.items()
            if s.paused_at is None and now - s.seen_at < self.idle_s and name not in caught_up
        ]
        low = min(sending) if sending else None
        pause, resume = [], []
        for name, source in self._sources.items():
            ahead = low is not None and source.newest_ms > low + self.max_drift_ms
            if source.paused_at is None:
                # Not again right after a forced resume: give it max_pause_s to move.
                cooling = (
                    source.resumed_at is not None and now - source.resumed_at < self.max_pause_s
                )
                if ahead and not cooling:
                    source.paused_at = now
                    pause.append(name)
            elif not ahead or now - source.paused_at >= self.max_pause_s:
                source.paused_at = None
                source.resumed_at = now if ahead else None
                source.seen_at = now  # it starts sending again
                resume.append(name)
        return pause, resume

    def sources(self) -> list[Hashable]:
        """Every source observed."""
        return list(self._sources)

    def paused(self) -> list[Hashable]:
        """The sources paused now."""
        return [name for name, s in self._sources.items() if s.paused_at is not None]
