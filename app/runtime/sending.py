"""Send pipeline outputs to their downstream topics (shared by every agent).

Outputs go straight to the worker's Kafka producer, encoded once here (keys UTF-8, values
orjson: the bytes the topics' Faust serializers would write), without Faust's per-message
send path (channel, serializer registry, send sensors; docs/performance.md) and its
producer's per-record wrapper, in one producer batch per topic partition
(app/runtime/producer.py). Partitioning is the producer's, as for any Kafka client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from app.codecs import dumps_value
from app.faust_app import app
from app.faust_topics import output_topics
from app.metrics.faust_sensor import count_sent
from app.model.outputs import Output
from app.runtime.producer import kafka_producer, send_records

#: Each logical topic's Kafka topic name.
_names = {stream: topic.get_topic_name() for stream, topic in output_topics.items()}


async def send_outputs(outputs: Iterable[Output]) -> list[asyncio.Future]:
    """Hand the outputs to the producer; returns the futures of the broker's acknowledgements
    (one per producer batch; nothing waits for them here)."""
    names = _names
    records = [
        (
            names[out.topic],
            None,
            out.key.encode() if out.key is not None else None,
            dumps_value(out.value),
        )
        for out in outputs
    ]
    if not records:
        return []
    batches = await send_records(kafka_producer(app), records)
    count_sent(app, len(records))
    return [batch.future for batch in batches]


async def send_and_confirm(outputs: Iterable[Output]) -> None:
    """Send the outputs and wait until the broker acknowledged every one of them.

    Used before committing the state writes that produced them: a crash can then repeat an
    output (same id) but never lose one.
    """
    pending = await send_outputs(outputs)
    if pending:
        await asyncio.gather(*pending)
