"""The worker's garbage collector, tuned for a heap that is mostly long-lived.

- **Young collections every 10,000 allocations** instead of CPython's 700: at 700 the objects
  of a batch still in flight were collected over and over and promoted to the older
  generations, where they later died anyway (0.35-0.38 -> 0.33 ms CPU per raw record in two
  A/B pairs, docs/performance.md).
- **Full collections scan only what is new.** A worker's heap is mostly long-lived (cached
  table values, Faust's and aiokafka's machinery) and CPython's full collection walks all of
  it: 60-95 ms every few seconds at half load, with nothing collected and the event loop
  stopped meanwhile. After each full collection the survivors are moved to the permanent
  generation (`gc.freeze`), so the next one scans only what was allocated since. Reference
  counting still frees frozen objects; only a frozen object that later becomes part of a
  garbage *cycle* is not collected. So that such leaks stay bounded, once the heap (its
  allocated blocks) has grown `growth` times since the last thaw, it is thawed and collected
  in full (a rare stop, in the loop's own thread), then frozen again: the heap stays within
  `growth` times what is really alive. The heap is measured by its blocks, which the
  allocator sums per memory pool, not by `gc.get_freeze_count`, which walks every frozen
  object (~50 ms on a worker's heap, ~3 % of a backlog's CPU at every full collection).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from typing import Any

#: A heap this many times its size after the last full thaw is thawed and collected.
DEFAULT_GROWTH = 2.0
#: Allocations (net of deallocations) between two young collections; CPython's default is 700.
YOUNG_THRESHOLD = 10_000


class FrozenHeap:
    """The freeze-after-full-collection policy of one process (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, growth: float = DEFAULT_GROWTH) -> None:
        self.loop = loop
        self.growth = growth
        self.thaws = 0
        self._base = 0
        self._thaw_pending = False

    def install(self) -> None:
        """Collect and freeze now, and after every full collection from now on."""
        self.thaw()
        gc.callbacks.append(self._after_collection)

    def uninstall(self) -> None:
        """Stop freezing and give the frozen heap back to the collector."""
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)
        gc.unfreeze()

    def thaw(self) -> None:
        """Collect the whole heap, frozen part included, then freeze what survived."""
        self._thaw_pending = True  # its own collection schedules no other
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._base = max(sys.getallocatedblocks(), 1)
        self.thaws += 1
        self._thaw_pending = False

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Runs in whichever thread allocated (the consumer's has its own loop); the collector
        # cannot be run from here, so a thaw is handed to the worker's loop.
        if phase != "stop" or info["generation"] != 2:
            return
        gc.freeze()
        if not self._thaw_pending and sys.getallocatedblocks() > self.growth * self._base:
            self._thaw_pending = True
            with contextlib.suppress(RuntimeError):  # the loop closed: the worker is stopping
                self.loop.call_soon_threadsafe(self.thaw)


def install(loop: asyncio.AbstractEventLoop) -> FrozenHeap:
    """Tune this process's collector (see the module docstring); returns the frozen heap."""
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    heap = FrozenHeap(loop)
    heap.install()
    return heap
