"""Records sent a producer batch at a time (app/runtime/producer.py): per topic partition, in
the order given, keyed records partitioned as aiokafka's `send` partitions them."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from app.runtime.producer import send_records
from tests.unit.runtime.fake_producer import FakeProducer


def _send(producer: FakeProducer, records):
    return asyncio.run(send_records(producer, records))


def test_one_batch_per_topic_partition_in_the_order_given():
    producer = FakeProducer(partitions=4)
    records = [("events", None, f"svc:{i % 7}".encode(), f"v{i}".encode()) for i in range(40)]
    records += [("changelog", 2, b"k", b"a"), ("changelog", 2, b"k", None)]
    batches = _send(producer, records)

    partition_of = DefaultPartitioner()
    expected: dict[tuple[str, int], list] = {}
    for topic, partition, key, value in records:
        if partition is None:  # what the producer's `send` would pick
            partition = partition_of(key, producer.partitions, producer.partitions)
        expected.setdefault((topic, partition), []).append((key, value))
    assert {(t, p): r for t, p, r, _ in producer.batches} == expected
    assert len(batches) == len(expected)  # one each
    assert [(b.topic, b.partition, b.count) for b in batches] == [
        (t, p, len(r)) for t, p, r, _ in producer.batches
    ]
    assert ("changelog", 2, b"k", None) in producer.sent  # a tombstone stays one


def test_a_full_batch_goes_out_and_the_partition_continues_in_a_new_one():
    producer = FakeProducer(partitions=1, batch_size=300)
    records = [("t", 0, None, bytes([65 + i]) * 60) for i in range(12)]
    batches = _send(producer, records)
    assert len(batches) > 1
    assert [(k, v) for _, _, k, v in producer.sent] == [(None, v) for *_, v in records]
    assert sum(b.count for b in batches) == 12


def test_a_record_over_the_request_size_is_refused_like_send_refuses_it():
    producer = FakeProducer()
    producer._max_request_size = 1_000
    with pytest.raises(MessageSizeTooLargeError, match="1001 bytes for t"):
        _send(producer, [("t", 0, b"k", b"x" * 1000)])
    assert producer.batches == []
