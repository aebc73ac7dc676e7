"""The worker's Kafka producer, for records Vigil encodes itself, sent a batch at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError

#: A record to send: topic, partition (None: the producer's partitioner picks it by key),
#: key and value, already encoded.
Record = tuple[str, int | None, bytes | None, bytes | None]


def kafka_producer(faust_app: Any) -> Any:
    """The worker's aiokafka producer itself: the one Faust's `Producer.send` hands a record
    to when it has no transactional id, as outputs and changelog records here have not.
    Faust's wrapper adds, per record, a signal (`on_produce_message`), header and timestamp
    handling and the re-wrapping of Kafka errors (~2 % of a worker's samples), for records that
    carry no headers and no timestamp of their own."""
    return faust_app.producer._ensure_producer()


@dataclass(frozen=True)
class SentBatch:
    """One producer batch: `count` records to one topic partition."""

    topic: str
    partition: int
    count: int
    #: resolves to the batch's `RecordMetadata` (its offset is the first record's)
    future: asyncio.Future


async def send_records(producer: Any, records: Iterable[Record]) -> list[SentBatch]:
    """Hand `records` to the aiokafka `producer` as one batch per topic partition, each in the
    order given; returns the batches (nothing waits for their acknowledgement here).

    The producer's own `send` builds a batch too, but creates a future, looks the partition up
    and checks the message per record (~8 us each, three times what appending to a batch costs,
    measured); records are partitioned by the producer's partitioner, as `send` partitions
    them, with the topic's partition lists built once per call. A partition whose last
    batch is still queued waits until the producer takes it, so the order per partition holds
    across calls and with records sent through `send`.
    """
    limit = producer._max_request_size
    partitioner = producer._partitioner
    builders: dict[tuple[str, int], Any] = {}
    sent: list[SentBatch] = []
    partitions_of: dict[str, tuple[list[int], list[int]]] = {}
    for topic, partition, key, value in records:
        partitions = partitions_of.get(topic)
        if partitions is None:
            await producer.client._wait_on_metadata(topic)
            partitions = partitions_of[topic] = _partitions(producer._metadata, topic)
        size = (len(key) if key else 0) + (len(value) if value else 0)
        if size > limit:  # `send` refuses it as early, with the same error
            raise MessageSizeTooLargeError(f"a record of {size} bytes for {topic}: over {limit}")
        if partition is None:
            partition = partitioner(key, *partitions)
        builder = builders.get((topic, partition))
        if builder is None:
            builder = builders[topic, partition] = producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None) is None:  # full: send it
            sent.append(await _submit(producer, topic, partition, builder))
            builder = builders[topic, partition] = producer.create_batch()
            builder.append(key=key, value=value, timestamp=None)  # an empty batch takes any
    for (topic, partition), builder in builders.items():
        sent.append(await _submit(producer, topic, partition, builder))
    return sent


def _partitions(metadata: Any, topic: str) -> tuple[list[int], list[int]]:
    """All and available partitions of `topic`, as the producer hands them to its partitioner
    (`AIOKafkaProducer._partition`, which builds both lists for every record)."""
    return (
        list(metadata.partitions_for_topic(topic)),
        list(metadata.available_partitions_for_topic(topic)),
    )


async def _submit(producer: Any, topic: str, partition: int, builder: Any) -> SentBatch:
    count = builder.record_count()
    builder.close()
    future = await producer.send_batch(builder, topic, partition=partition)
    return SentBatch(topic, partition, count, future)
