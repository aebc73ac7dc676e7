"""Every Faust topic of the worker, bound once on the app; agents import them from here.

Agents consume their inputs as bytes and decode them themselves, so that an undecodable record
reaches the dead-letter topic instead of Faust's error log. Outputs are written as UTF-8 keys
and orjson values. Names and partition counts come from the topic catalog (app/topics.py).
"""

from __future__ import annotations

import asyncio

import faust

from app.faust_app import app, catalog, settings
from app.topics import OUTPUT_STREAMS


def _read_as_bytes(*names: str, partitions: int) -> faust.TopicT:
    return app.topic(
        *names,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=True,
    )


def _input(logical: str) -> faust.TopicT:
    """A downstream topic as an agent consumes it (bytes)."""
    return _read_as_bytes(catalog.name(logical), partitions=catalog.partitions(logical))


#: Every raw telemetry topic, read by the ingest agent.
raw_topic = _read_as_bytes(*catalog.raw_topics(), partitions=settings.partitions)
#: `vigil.events`, read by the process agent.
events_in_topic = _input("events")
#: `vigil.risk_signals`, read by the risk agent.
risk_signals_topic = _input("risk_signals")
#: `vigil.control` (one partition), read by the control agent.
control_topic = _input("control")
#: `vigil.alerts`, read by the sink agent (app/sinks/dispatch.py decodes it).
alerts_in_topic = _input("alerts")
#: `vigil.alerts-retry`, read by the retry agent.
retry_in_topic = _input("alerts-retry")

#: Downstream topics by logical name (`events`, `deadletter`, `alerts-retry`, ...), as written.
output_topics: dict[str, faust.TopicT] = {
    stream: app.topic(
        catalog.name(stream),
        key_serializer="utf8",
        value_serializer="orjson",
        partitions=catalog.partitions(stream),
        internal=True,
    )
    for stream in OUTPUT_STREAMS
}

_declared = asyncio.Event()
_declare_lock = asyncio.Lock()


async def declare_output_topics() -> None:
    """Create every downstream topic with Vigil's partition count before anything is sent.

    Without this the broker would auto-create a topic on first send, with one partition.
    """
    if _declared.is_set():
        return
    async with _declare_lock:
        if not _declared.is_set():
            for topic in output_topics.values():
                await topic.maybe_declare()
            _declared.set()
