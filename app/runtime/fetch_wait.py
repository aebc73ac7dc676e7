"""The consumer's long poll at the broker, bounded by a setting.

Faust's aiokafka driver creates the worker's consumer with `fetch_max_wait_ms=1500` (hard-coded
in `AIOKafkaConsumerThread._create_worker_consumer`). aiokafka keeps one fetch request in flight
per broker: a request for partitions with nothing new waits at the broker up to that long, and
partitions whose fetched records the agents consumed meanwhile are not fetched again until it
returns. With the whole pipeline in one worker that was most of a stage's idle time: the
process agent's buffer empty for 3 s in 5 while `vigil.events` held thousands of records.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_faust_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def install(wait_ms: int) -> None:
    """Create the worker's consumer with a long poll of at most `wait_ms` (idempotent)."""

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = _faust_create_worker_consumer(self, transport)
        consumer._fetch_max_wait_ms = wait_ms  # read when the consumer starts its fetcher
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]
