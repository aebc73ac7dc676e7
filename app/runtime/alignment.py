"""Pausing input partitions that run too far ahead in event time (app/runtime/source_alignment.py),
for one agent's input topics: the raw topics at ingest, `vigil.events` at the process agent."""

from __future__ import annotations

import time
from typing import Any

from faust.types import TP

from app import metrics
from app.runtime.source_alignment import SourceAlignment
from app.settings import Settings


class PartitionAligner:
    """One agent's alignment over the app's consumer (does nothing when turned off).

    Faust drops the records of a partition paused while their fetch was under way (its
    `getmany` yields only active partitions), and its read position has moved past them. So a
    resumed partition is sought back to just after the last record the agent handled: what
    comes again is recognised as a repeat (app/runtime/acking.py), nothing is skipped."""

    def __init__(self, app: Any, settings: Settings, stage: str) -> None:
        self.app = app
        self.stage = stage
        self.alignment = (
            SourceAlignment(
                settings.align_drift_ms,
                idle_s=settings.clock_idle_ms / 1000,
                max_pause_s=2 * settings.clock_idle_ms / 1000,
            )
            if settings.align_drift_ms > 0
            else None
        )
        self._next: dict[TP, int] = {}

    async def observe(self, topic: str, partition: int, offset: int, event_ms: int | None) -> None:
        """The agent handled the record at `offset` of (topic, partition), with events up to
        `event_ms` (None: none); pause or resume partitions now."""
        if self.alignment is None:
            return
        # Faust's consumer wants its own TP type (a message's `tp` may be aiokafka's).
        tp = TP(topic, partition)
        self._next[tp] = offset + 1
        if event_ms is not None:
            self.alignment.observe(tp, event_ms, time.monotonic())
            await self.align()

    async def align(self) -> None:
        """Pause the partitions too far ahead, resume those the others caught up with."""
        if self.alignment is None:
            return
        pause, resume = self.alignment.decide(time.monotonic(), self._caught_up())
        if pause:
            metrics.source_pauses.labels(self.stage).inc(len(pause))
        if resume:
            await self._resume(resume)
        paused = self.alignment.paused()
        if paused:
            # Every time: Faust's own flow control (`on_buffer_drop`) may re-activate one.
            self.app.consumer.pause_partitions(paused)

    async def release(self) -> None:
        """Partitions may move: resume what was paused and start over."""
        if self.alignment is not None:
            paused = self.alignment.paused()
            if paused:
                self.app.consumer.resume_partitions(paused)
            self.alignment.forget()
            self._next.clear()

    def _caught_up(self) -> set[Any]:
        """Partitions whose every record the agent handled (as far as the consumer knows)."""
        done = set()
        for tp in self.alignment.sources() if self.alignment is not None else []:
            try:
                end = self.app.consumer.highwater(tp)
            except Exception:  # not assigned any more (a rebalance under way): not known
                continue
            if end is not None and end >= 0 and self._next.get(tp, -1) >= end:
                done.add(tp)
        return done

    async def _resume(self, tps: list[Any]) -> None:
        back = {tp: self._next[tp] for tp in tps if tp in self._next}
        if back:
            await self.app.consumer.seek_wait(back)
        self.app.consumer.resume_partitions(tps)
