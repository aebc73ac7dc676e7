"""Ingest stage: raw telemetry topics -> canonical events on `vigil.events`, keyed by entity.

Stateless; each raw record becomes events or one dead letter. Runs with concurrency 1, since
higher agent concurrency can commit offsets past in-flight messages (faust-streaming#606).
Records are taken in batches of what is already buffered (up to `VIGIL_BATCH_MAX`, no
lingering: no latency added), and acknowledged once the whole batch was handed to the producer.
Raw partitions too far ahead of the others in event time are paused
(app/runtime/source_alignment.py).
"""

from __future__ import annotations

from app import metrics
from app.faust_app import app, catalog, settings
from app.faust_topics import declare_output_topics, raw_topic
from app.model.outputs import Origin
from app.pipeline import Pipeline
from app.runtime.acking import processed_batches
from app.runtime.alignment import PartitionAligner
from app.runtime.raw_progress import RawProgress
from app.runtime.sending import send_outputs

pipeline = Pipeline(settings)

#: Raw partitions paused for being too far ahead in event time (app/runtime/source_alignment.py).
aligner = PartitionAligner(app, settings, "ingest")
#: How far each raw partition was read: clock ticks report it (agents/clock_ticks.py).
progress = RawProgress()


@app.agent(raw_topic, concurrency=1)
async def ingest(stream):
    """Normalize every raw record; anything unreadable goes to the dead-letter topic."""
    await declare_output_topics()
    async for events in processed_batches(stream, settings.batch_max):
        handled = []
        observed = []
        sending = []
        for event in events:
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
            sending.extend(outputs)
            observed.append((family, outputs))
            times = [out.value["ts_ms"] for out in outputs if out.topic == "events"]
            handled.append((message, max(times) if times else None))
        await send_outputs(sending)
        metrics.observe_ingests(observed)
        # After every event of the batch went to the producer: a clock tick reporting this
        # progress is sent after them (agents/clock_ticks.py).
        for message, newest in handled:
            progress.observe(message.topic, message.partition, message.offset, newest)
            await aligner.observe(message.topic, message.partition, message.offset, newest)


@app.timer(interval=1.0)
async def _align_when_quiet() -> None:
    """Also decide without records: the slowest source may have stopped sending."""
    await aligner.align()


@app.on_partitions_revoked.connect
async def _alignment_over(sender, revoked, **kwargs) -> None:
    """Partitions may move: resume what alignment paused and start over."""
    progress.forget()
    await aligner.release()
