"""An aiokafka producer without a broker: real batch builders (the bytes aiokafka would send),
the workers' partitioner, and acknowledgements the test gives (`acknowledge`, `fail`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from app.topics import kafka_partitioner


class FakeProducer:
    """Records each submitted batch; also stands in for Faust's producer (`_ensure_producer`)."""

    def __init__(self, partitions: int = 4, batch_size: int = 16_384) -> None:
        self.partitions = list(range(partitions))
        self.batch_size = batch_size
        self._max_request_size = 1_048_576
        self.client = SimpleNamespace(_wait_on_metadata=self._wait_on_metadata)
        self._metadata = SimpleNamespace(
            partitions_for_topic=lambda topic: set(self.partitions),
            available_partitions_for_topic=lambda topic: set(self.partitions),
        )
        self._partitioner = kafka_partitioner  # the workers' (app/faust_app.py)
        #: (topic, partition, records as (key, value), future) per submitted batch
        self.batches: list[tuple[str, int, list[tuple[bytes | None, bytes | None]], asyncio.Future]]
        self.batches = []
        self._next_offset: dict[tuple[str, int], int] = {}

    def _ensure_producer(self) -> FakeProducer:
        return self

    async def _wait_on_metadata(self, topic: str) -> None:
        return None

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0, is_transactional=False)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int):
        records = [(r.key, r.value) for r in DefaultRecordBatch(batch._build())]
        future = asyncio.get_running_loop().create_future()
        self.batches.append((topic, partition, records, future))
        return future

    @property
    def sent(self) -> list[tuple[str, int, bytes | None, bytes | None]]:
        """Every record submitted, in order: (topic, partition, key, value)."""
        return [(t, p, k, v) for t, p, records, _ in self.batches for k, v in records]

    def acknowledge(self) -> None:
        """The broker took every batch not acknowledged yet, at the next offsets."""
        for topic, partition, records, future in self.batches:
            if not future.done():
                base = self._next_offset.get((topic, partition), 0)
                self._next_offset[topic, partition] = base + len(records)
                tp = SimpleNamespace(topic=topic, partition=partition)
                future.set_result(SimpleNamespace(topic_partition=tp, offset=base))

    def fail(self, error: Exception) -> None:
        """The broker refused every batch not acknowledged yet."""
        for *_, future in self.batches:
            if not future.done():
                future.set_exception(error)
