"""Control stage: commands on `vigil.control` (create or expire a silence) -> global tables.

Commands are JSON: `{"command": "silence.create", "silence": {matchers, startsAt, endsAt,
createdBy, comment}}` or `{"command": "silence.expire", "id": ..., "at": <time>, "by": ...}`.
Invalid commands go to the dead-letter topic with the reason; nothing is applied half-way.
"""

from __future__ import annotations

import orjson

from agents.sending import send_outputs
from app.faust_app import app, catalog, declare_output_topics, settings
from app.outputs import Origin, dead_letter
from app.sources.errors import ErrorCode, NormalizeError
from tables.control import apply_command
from tables.definitions import silences

control_topic = app.topic(
    catalog.name("control"),
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
    internal=True,
)


@app.agent(control_topic, concurrency=1)
async def control(stream):
    """Apply each control command to the global tables."""
    await declare_output_topics()
    async for event in stream.events():
        message = event.message
        raw = event.value if isinstance(event.value, bytes) else b""
        try:
            changes = apply_command(orjson.loads(raw), silences)
        except (orjson.JSONDecodeError, ValueError) as exc:
            origin = Origin(message.topic, message.partition, message.offset, None)
            error = NormalizeError(ErrorCode.INVALID_VALUE, str(exc)[:500])
            await send_outputs([dead_letter(origin, error, raw)])
            continue
        for key, value in changes.items():
            silences[key] = value
