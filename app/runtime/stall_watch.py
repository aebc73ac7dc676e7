"""Input partitions that stopped delivering while records wait: read again from where the agent
is.

After a takeover on a loaded machine, a newly assigned partition was seen to deliver a few
records and then none, with hundreds waiting behind them, for as long as the worker ran
(`test_standby_replica_takes_over_after_sigkill`, 1 run in 4 to 10 with a CPU-heavy job beside
it; the fetcher never asked for that partition again, cause not found). Seeking loses nothing:
what comes again is a repeat to the agent (app/runtime/acking.py). So a partition whose next
expected offset has not moved for `stall_s` while its high-water mark is past it, and which
nothing holds back on purpose (flow stopped for a rebalance, a full buffer, alignment), is
sought to that offset.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Seconds without progress, with records waiting, before a partition counts as stalled.
STALL_S = 15.0
#: How often partitions are checked (seconds).
CHECK_S = 5.0


class StallWatch:
    """Which partitions are stalled: fed the agent's positions at each check."""

    def __init__(self, stall_s: float = STALL_S) -> None:
        self.stall_s = stall_s
        self._since: dict[Any, tuple[int, float]] = {}

    def stalled(
        self,
        now: float,
        positions: Mapping[Any, int],
        highwater: Callable[[Any], int | None],
        held_back: Callable[[Any], bool],
    ) -> dict[Any, int]:
        """The partitions (-> offset to read from) whose position has not moved for `stall_s`
        while records wait past it. `positions`: each partition's next offset to process."""
        found: dict[Any, int] = {}
        for tp, position in positions.items():
            seen = self._since.get(tp)
            if seen is None or seen[0] != position:
                self._since[tp] = (position, now)
                continue
            end = highwater(tp)
            if end is None or end <= position or held_back(tp):
                self._since[tp] = (position, now)
                continue
            if now - seen[1] >= self.stall_s:
                found[tp] = position
                self._since[tp] = (position, now)  # give the seek time to work
        for tp in set(self._since) - set(positions):
            del self._since[tp]
        return found


async def watch(
    consumer: Any,
    positions: Callable[[], Mapping[Any, int | None]],
    buffered: Callable[[], bool],
    counters: dict[str, int],
    stall_s: float = STALL_S,
    check_s: float = CHECK_S,
) -> None:
    """Check the agent's partitions every `check_s` and seek the stalled ones (runs until
    cancelled). `positions`: the next offset to process of each assigned partition (None:
    not known, the log start is taken); `buffered`: whether the agent's buffer holds events.
    End offsets are asked of the broker: a partition never fetched has no high-water mark."""
    stall = StallWatch(stall_s)
    held_back = _held_back(consumer, buffered)
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(check_s)
        if not consumer.flow_active or consumer.app.rebalancing:
            continue
        where = dict(positions())
        if not where:
            continue
        unknown = [tp for tp, position in where.items() if position is None]
        if unknown:
            where.update(await consumer.earliest_offsets(*unknown))
        ends = await consumer.highwaters(*where)
        stalled = stall.stalled(loop.time(), where, ends.get, held_back)
        for tp, offset in stalled.items():
            counters["stall_seeks"] += 1
            log.warning(
                "%s[%s]: no record delivered for %.0f s with records waiting past offset %s; "
                "reading from %s again",
                tp.topic,
                tp.partition,
                stall.stall_s,
                offset,
                offset,
            )
            await consumer.seek_wait({tp: offset})
            # Taken out of the fetcher for a full buffer that has drained since: back in.
            consumer.on_buffer_drop(tp)


def _held_back(consumer: Any, buffered: Callable[[], bool]) -> Callable[[Any], bool]:
    """Whether Faust holds a partition back on purpose: paused, or taken out of the fetcher
    while the agent's buffer still holds events (it is put back as the buffer drains)."""

    def held_back(tp: Any) -> bool:
        if tp in consumer._paused_partitions:
            return True
        return tp in consumer._buffered_partitions and buffered()

    return held_back
