"""Asking the broker directly what one partition holds, beside the worker's own consumer."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition

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
