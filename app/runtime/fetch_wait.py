"""How long the worker's fetcher waits: its long poll at the broker, and its prefetch backoff.

Both bounds hold back *every* partition of a broker, because aiokafka keeps at most one fetch
request in flight per broker:

- **Long poll** (`fetch_max_wait_ms`): Faust's aiokafka driver creates the worker's consumer
  with 1500 ms (hard-coded in `AIOKafkaConsumerThread._create_worker_consumer`). A request for
  partitions with nothing new waits at the broker up to that long, and partitions whose fetched
  records the agents consumed meanwhile are not fetched again until it returns. With the whole
  pipeline in one worker that was most of a stage's idle time: the process agent's buffer empty
  for 3 s in 5 while `vigil.events` held thousands of records.
- **Prefetch backoff**: while one partition's fetched records are not yet taken by Faust
  (its agent busy, or Faust's flow control holding it), aiokafka sends no fetch request to the
  broker at all until those records are 100 ms old (`Fetcher(prefetch_backoff=0.1)`, which
  `AIOKafkaConsumer` does not expose). Every other partition's new records wait meanwhile: most
  of the worker's latency past the median was this wait.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_faust_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def install(wait_ms: int, backoff_ms: int) -> None:
    """Create the worker's consumer with a long poll of at most `wait_ms` and a prefetch
    backoff of `backoff_ms` (idempotent)."""

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = _faust_create_worker_consumer(self, transport)
        consumer._fetch_max_wait_ms = wait_ms  # read when the consumer starts its fetcher
        start = consumer.start

        async def start_with_backoff() -> None:
            await start()  # creates the fetcher
            consumer._fetcher._prefetch_backoff = backoff_ms / 1000

        consumer.start = start_with_backoff
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]
