"""Partitioning as Kafka's default partitioner does it (app/topics.py)."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from app.topics import entity_partition, kafka_partitioner


def test_the_workers_partitioner_is_kafkas_default_for_keys():
    default = DefaultPartitioner()
    for count in (1, 3, 4, 12):
        partitions = list(range(count))
        for key in (b"", b"svc:payments", b"node-b", "caf\u00e9".encode(), bytes(range(40))):
            expected = default(key, partitions, partitions)
            assert kafka_partitioner(key, partitions, partitions) == expected
            assert kafka_partitioner(key, partitions, partitions) == expected  # remembered
            if key:
                assert entity_partition(key.decode("latin-1"), count) == default(
                    key.decode("latin-1").encode(), partitions, partitions
                )


def test_without_a_key_an_available_partition_is_chosen():
    for _ in range(20):
        assert kafka_partitioner(None, [0, 1, 2, 3], [2]) == 2
        assert kafka_partitioner(None, [0, 1], []) in (0, 1)


def test_the_workers_producer_uses_it():
    from app.faust_app import app

    assert app.conf.producer_partitioner is kafka_partitioner
