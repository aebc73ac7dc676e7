"""Pausing input partitions that run too far ahead in event time (app/source_alignment.py),
for one agent's input topics: the raw topics at ingest, `vigil.events` at the process agent."""

from __future__ import annotations

import time
from typing import Any

from faust.types import TP

from app import metrics
from app.settings import Settings
from app.source_alignment import SourceAlignment


class PartitionAligner:
    """One agent's alignment over the app's consumer (does nothing when turned off)."""

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

    def observe(self, topic: str, partition: int, event_ms: int) -> None:
        """A record of (topic, partition) with events up to `event_ms` was read; pause or
        resume now."""
        if self.alignment is not None:
            # Faust's consumer wants its own TP type (a message's `tp` may be aiokafka's).
            self.alignment.observe(TP(topic, partition), event_ms, time.monotonic())
            self.align()

    def align(self) -> None:
        """Pause the partitions too far ahead, resume those the others caught up with."""
        if self.alignment is None:
            return
        pause, resume = self.alignment.decide(time.monotonic())
        if pause:
            metrics.source_pauses.labels(self.stage).inc(len(pause))
        if resume:
            self.app.consumer.resume_partitions(resume)
        paused = self.alignment.paused()
        if paused:
            # Every time: Faust's own flow control (`on_buffer_drop`) may re-activate one.
            self.app.consumer.pause_partitions(paused)

    def release(self) -> None:
        """Partitions may move: resume what was paused and start over."""
        if self.alignment is not None:
            paused = self.alignment.paused()
            if paused:
                self.app.consumer.resume_partitions(paused)
            self.alignment.forget()
