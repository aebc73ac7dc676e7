"""Through the real broker: what `broker_probe` reports to acking (app/runtime/acking.py): the
first offset served from an offset, asked before a jump is accepted as offsets that do not exist,
and where a consumer group resumes each partition, asked when a record comes before Faust knows
the committed offset."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from app import kafka_io
from app.runtime.broker_probe import first_offset_from, group_starts

pytestmark = pytest.mark.integration


async def _offsets_with_an_aborted_transaction(bootstrap: str, topic: str) -> int:
    """Offsets 0-2 plain records, 3-4 an aborted transaction's, then a plain record (its offset
    returned) and the abort marker, which the coordinator writes in either order."""
    await kafka_io.ensure_topics(bootstrap, [topic], partitions=1, replicas=1)
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap)
    txn = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-txn")
    await plain.start()
    await txn.start()
    try:
        for n in range(3):
            await plain.send_and_wait(topic, f"plain-{n}".encode(), partition=0)
        await txn.begin_transaction()
        for n in range(2):
            await txn.send_and_wait(topic, f"aborted-{n}".encode(), partition=0)
        await txn.abort_transaction()
        after = await plain.send_and_wait(topic, b"after", partition=0)
        return after.offset
    finally:
        await txn.stop()
        await plain.stop()


def test_the_first_offset_served_from_an_offset_as_each_isolation_reads(bootstrap, isolation):
    topic = f"{isolation['VIGIL_TOPIC_PREFIX']}gaps"
    tp = TopicPartition(topic, 0)

    async def scenario() -> dict[str, int | None]:
        after = await _offsets_with_an_aborted_transaction(bootstrap, topic)
        assert after in (5, 6)

        async def first(offset: int, level: str, timeout_s: float = 10.0) -> int | None:
            return await first_offset_from(bootstrap, tp, offset, level, timeout_s)

        return {
            "existing": await first(1, "read_uncommitted"),
            "aborted, uncommitted": await first(3, "read_uncommitted"),
            "aborted, committed": await first(3, "read_committed") == after,
            "past the end": await first(7, "read_committed", timeout_s=1.0),
        }

    got = asyncio.run(scenario())
    # A record that exists is served as itself; an aborted transaction's records are a real
    # gap only to a read_committed consumer; past the end nothing comes in time.
    assert got == {
        "existing": 1,
        "aborted, uncommitted": 3,
        "aborted, committed": True,
        "past the end": None,
    }


def test_where_a_group_resumes_each_partition_without_joining_it(bootstrap, isolation):
    topic = f"{isolation['VIGIL_TOPIC_PREFIX']}starts"
    group = f"{isolation['VIGIL_APP_ID']}-starts"
    tps = [TopicPartition(topic, p) for p in range(3)]

    async def scenario() -> tuple[dict[int, int], list]:
        await kafka_io.ensure_topics(bootstrap, [topic], partitions=3, replicas=1)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for tp in tps:
                for n in range(5):
                    await producer.send_and_wait(topic, b"%d" % n, partition=tp.partition)
        finally:
            await producer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        committer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await committer.start()
        try:
            await admin.delete_records(
                {tps[2]: RecordsToDelete(3)}
            )  # partition 2's log now starts at 3
            committer.assign([tps[0]])
            await committer.commit({tps[0]: 4})
            starts = await group_starts(bootstrap, group, tps, timeout_s=10.0)
            (described,) = await admin.describe_consumer_groups([group])
        finally:
            await committer.stop()
            await admin.close()
        return {tp.partition: offset for tp, offset in starts.items()}, described

    starts, described = asyncio.run(scenario())
    # Committed: the committed offset; nothing committed: the log start, wherever it is.
    assert starts == {0: 4, 1: 0, 2: 3}
    _error, _name, state, _protocol_type, _protocol, members = described.groups[0]
    assert (state, members) == ("Empty", []), "the probe joined the group"
