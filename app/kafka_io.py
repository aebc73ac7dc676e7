"""Plain aiokafka helpers for the CLI: create topics, produce files, consume as JSON lines."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from app.runtime.partition_clock import is_tick
from app.settings import Settings

#: Largest message the CLI producer sends (the broker's default limit is 1 MB).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def _security() -> dict[str, Any]:
    """TLS/SASL keyword arguments for an aiokafka client (`Settings.kafka`)."""
    return Settings.from_env().kafka.aiokafka_kwargs()


async def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    replicas: int,
    configs: dict[str, str] | None = None,
) -> None:
    """Create the topics that do not exist yet, with Vigil's partition count (and topic
    `configs`, if given)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **_security())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            n,
                            num_partitions=partitions,
                            replication_factor=replicas,
                            topic_configs=configs or {},
                        )
                        for n in missing
                    ]
                )
    finally:
        await admin.close()


async def delete_topics_with_prefix(bootstrap: str, prefixes: Iterable[str]) -> list[str]:
    """Delete every topic whose name starts with one of `prefixes`; returns the names.

    Used by tests and benchmarks to leave the local broker as they found it: every partition
    kept costs the broker open files, and its limit is finite.
    """
    prefixes = tuple(prefixes)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **_security())
    await admin.start()
    try:
        names = sorted(n for n in await admin.list_topics() if n.startswith(prefixes))
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


async def produce(
    bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes]], linger_ms: int = 5
) -> int:
    """Send `(topic, key, value)` records and wait for every acknowledgement; returns the count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=linger_ms,
        max_request_size=MAX_MESSAGE_BYTES,
        enable_idempotence=True,
        acks="all",
        **_security(),
    )
    await producer.start()
    sent = 0
    try:
        pending = []
        for topic, key, value in records:
            pending.append(await producer.send(topic, value=value, key=key))
            sent += 1
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def consume(
    bootstrap: str,
    topic: str,
    from_beginning: bool = False,
    max_records: int | None = None,
    timeout_s: float | None = None,
    decode: bool = True,
) -> AsyncIterator[dict[str, Any]]:
    """Yield records of every partition of `topic` as dicts; no consumer group, no commits.

    Stops after `max_records`, or once `timeout_s` seconds have passed. With `decode=False`
    values stay bytes; decoded, clock ticks (app/runtime/partition_clock.py) are left out.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **_security()
    )
    await consumer.start()
    try:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        partitions = await _wait_for_partitions(consumer, topic, deadline)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        seen = 0
        while max_records is None or seen < max_records:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            wait_ms = 500 if remaining is None else max(1, min(500, int(remaining * 1000)))
            batches = await consumer.getmany(timeout_ms=wait_ms)
            for tp in sorted(batches, key=lambda t: t.partition):
                for message in batches[tp]:
                    record = record_as_dict(message, decode)
                    if decode and is_tick(record["value"]):
                        continue  # a clock tick on vigil.events, not an event
                    yield record
                    seen += 1
                    if max_records is not None and seen >= max_records:
                        return
    finally:
        await consumer.stop()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The topic's partition ids from fresh metadata (empty while the topic does not exist)."""
    # `consumer.topics()` fetches fresh metadata but does not store it; read it directly.
    cluster = await consumer._client.fetch_all_metadata()
    return cluster.partitions_for_topic(topic) or set()


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """The end offset of every partition of `topics` (a topic not there yet has none)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **_security()
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(await partitions_of(consumer, topic))
        ]
        return await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()


async def _wait_for_partitions(consumer: AIOKafkaConsumer, topic: str, deadline: float | None):
    """The topic's partition ids, waiting (until `deadline`) for the topic to exist."""
    while True:
        partitions = await partitions_of(consumer, topic)
        if partitions:
            return partitions
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic!r} does not exist")
        await asyncio.sleep(0.5)


def record_as_dict(message: Any, decode: bool = True) -> dict[str, Any]:
    """A consumed message as `{topic, partition, offset, key, value}`; JSON values decoded."""
    value: Any = message.value
    if decode and message.value is not None:
        try:
            value = orjson.loads(message.value)
        except orjson.JSONDecodeError:
            value = {"raw_b64": base64.b64encode(message.value).decode()}
    key = message.key.decode("utf-8", "replace") if message.key is not None else None
    return {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp": message.timestamp,
        "key": key,
        "value": value,
    }
