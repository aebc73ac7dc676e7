"""Ingest stage: raw telemetry topics -> canonical events on `vigil.events`, keyed by entity.

Stateless; each raw record becomes events or one dead letter. Runs with concurrency 1, since
higher agent concurrency can commit offsets past in-flight messages (faust-streaming#606).
"""

from __future__ import annotations

from agents.acking import processed_events
from agents.sending import send_outputs
from app import metrics
from app.faust_app import app, catalog, declare_output_topics, raw_topic, settings
from app.outputs import Origin
from app.pipeline import Pipeline

pipeline = Pipeline(settings)


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
