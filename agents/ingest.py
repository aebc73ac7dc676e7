"""Ingest stage: raw telemetry topics -> canonical events on `vigil.events`, keyed by entity.

Stateless; each raw record becomes events or one dead letter. Runs with concurrency 1, since
higher agent concurrency can commit offsets past in-flight messages (faust-streaming#606).
Raw partitions too far ahead of the others in event time are paused (app/source_alignment.py).
"""

from __future__ import annotations

import time

from agents.acking import processed_events
from agents.sending import send_outputs
from app import metrics
from app.faust_app import app, catalog, declare_output_topics, raw_topic, settings
from app.outputs import Origin
from app.pipeline import Pipeline
from app.source_alignment import SourceAlignment

pipeline = Pipeline(settings)

#: Raw partitions paused for being too far ahead in event time (app/source_alignment.py).
alignment = (
    SourceAlignment(
        settings.align_drift_ms,
        idle_s=settings.clock_idle_ms / 1000,
        max_pause_s=2 * settings.clock_idle_ms / 1000,
    )
    if settings.align_drift_ms > 0
    else None
)


@app.agent(raw_topic, concurrency=1)
async def ingest(stream):
    """Normalize every raw record; anything unreadable goes to the dead-letter topic."""
    await declare_output_topics()
    async for event in processed_events(stream):
        message = event.message
        origin = Origin(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
        )
        raw = event.value if isinstance(event.value, bytes) else b""
        family = catalog.family_of(message.topic)
        outputs = pipeline.ingest(raw, family, origin)
        await send_outputs(outputs)
        metrics.observe_ingest(family, outputs)
        if alignment is not None:
            times = [out.value["ts_ms"] for out in outputs if out.topic == "events"]
            if times:
                alignment.observe(message.tp, max(times), time.monotonic())
                _align()


def _align() -> None:
    """Pause the raw partitions too far ahead, resume those the others caught up with."""
    if alignment is None:
        return
    pause, resume = alignment.decide(time.monotonic())
    if pause:
        metrics.source_pauses.inc(len(pause))
    if resume:
        app.consumer.resume_partitions(resume)
    paused = alignment.paused()
    if paused:
        # Every time: Faust's own flow control (`on_buffer_drop`) may have re-activated one.
        app.consumer.pause_partitions(paused)


@app.timer(interval=1.0)
async def _align_when_quiet() -> None:
    """Also decide without records: the slowest source may have stopped sending."""
    _align()


@app.on_partitions_revoked.connect
async def _alignment_over(sender, revoked, **kwargs) -> None:
    """Partitions may move: resume what alignment paused and start over."""
    if alignment is not None:
        paused = alignment.paused()
        if paused:
            app.consumer.resume_partitions(paused)
        alignment.forget()
