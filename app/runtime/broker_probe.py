"""Asking the broker directly what one partition holds, beside the worker's own consumer."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app.settings import Settings


async def first_offset_from(
    bootstrap: str, tp: TopicPartition, offset: int, isolation_level: str, timeout_s: float
) -> int | None:
    """The offset of the first record of `tp` at or after `offset`, as a consumer with
    `isolation_level` reads it (None: none arrived within `timeout_s`)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation_level,
        **Settings.from_env().kafka.aiokafka_kwargs(),
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            wait_ms = max(1, int(min(remaining, 1.0) * 1000))
            batches = await consumer.getmany(tp, timeout_ms=wait_ms, max_records=1)
            for message in batches.get(tp, []):
                return message.offset
        return None
    finally:
        await consumer.stop()


async def group_starts(
    bootstrap: str, group: str, tps: list[TopicPartition], timeout_s: float
) -> dict[TopicPartition, int]:
    """Where consumer group `group` resumes each of `tps`: its committed offset, or, with none
    committed, the partition's first offset (a worker's `auto_offset_reset` is `earliest`).
    Asked without joining the group, in one request for the committed offsets and one per
    leader for the first offsets (the asking agent waits: a request per partition, each
    waiting for a turn of a busy event loop, held a worker's first records for a second);
    raises `asyncio.TimeoutError` past `timeout_s`."""
    security = Settings.from_env().kafka.aiokafka_kwargs()

    async def ask() -> dict[TopicPartition, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, **security
        )
        try:
            await asyncio.gather(admin.start(), consumer.start())
            # Assigned (and paused: nothing is fetched) so that the client's metadata holds
            # the topics: unassigned, `beginning_offsets` waits out two metadata retries.
            consumer.assign(tps)
            consumer.pause(*tps)
            committed, starts = await asyncio.gather(
                admin.list_consumer_group_offsets(group, partitions=tps),
                consumer.beginning_offsets(tps),
            )
            for tp, found in committed.items():
                if tp in starts and found is not None and found.offset >= 0:
                    starts[tp] = found.offset
            return dict(starts)
        finally:
            await asyncio.gather(consumer.stop(), admin.close())

    return await asyncio.wait_for(ask(), timeout_s)
