"""A long batch gives the event loop a turn now and then.

All of a worker's agents share one event loop, and a batch is handled without a suspension
from its first event to its journal record: a process batch of a few hundred events kept
every other agent (ingest above all, whose records the latency to `vigil.events` is measured
on) and the fetcher waiting for tens of milliseconds. The batch loops ask for a turn after
each event; one is given when `every_s` of work went by since the last.

Safe mid-batch: a rebalance's revocation waits for the batch's events to be acknowledged
before anything forgets state (Faust's `wait_empty` precedes the `on_partitions_revoked`
signal), and only the batch's own task writes its staged state.
"""

from __future__ import annotations

import asyncio
import time


class LoopTurns:
    """Yields to the event loop once per `every_s` of work (never when 0)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.given = 0
        self._since = time.perf_counter()

    def start(self) -> None:
        """A batch begins: its work is counted from now."""
        self._since = time.perf_counter()

    async def take(self) -> None:
        """Give the loop a turn if `every_s` of work went by since the last one."""
        if self.every_s and time.perf_counter() - self._since >= self.every_s:
            await asyncio.sleep(0)
            self.given += 1
            self._since = time.perf_counter()
