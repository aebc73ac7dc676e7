"""Table writes straight to RocksDB and the changelog (app/runtime/direct_writes.py): the same
bytes Faust's table would store and send, read back through Faust's store, and the persisted
offset stored once per table partition when its last record is acknowledged."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import faust
import orjson

from app.codecs import dumps_value, register_codecs
from app.runtime import changelog_writes
from app.runtime.current_event import make_current
from app.runtime.direct_writes import DirectWrites
from app.runtime.journal import Journal
from app.runtime.staged import StagedState
from app.runtime.table_cache import CachedTable
from tests.unit.runtime.fake_producer import FakeProducer


def _table(tmp_path) -> Any:
    register_codecs()
    app = faust.App("direct-writes-test", store="rocksdb://", datadir=str(tmp_path))
    table = app.Table(
        "state",
        default=None,
        partitions=4,
        schema=faust.Schema(key_serializer="utf8", value_serializer="orjson"),
    )
    table.value_serializer = "orjson"  # as tables/definitions.py sets it
    return table


class _Event:
    """Enough of a Faust event for the store to pick a partition's database."""

    def __init__(self, partition: int, offset: int = 0) -> None:
        self.message = SimpleNamespace(partition=partition, offset=offset)


def test_writes_are_faust_bytes_read_back_by_faust_and_offsets_persisted_once(tmp_path):
    table = _table(tmp_path)
    store, topic = table.data, table.changelog_topic
    producer = FakeProducer(partitions=4)
    counted: list[int] = []
    monitor = SimpleNamespace(count_sent=counted.append)
    writes = DirectWrites(SimpleNamespace(producer=producer, monitor=monitor))
    cached = CachedTable(table, 16, direct=writes)
    view = cached.partition_view(2)

    async def scenario() -> None:
        changelog_writes.start()
        view.put_encoded("svc:a", {"n": 1}, b'{"n":1}')
        view["svc:b"] = {"n": 2, "x": "\u00e9"}
        view["svc:c"] = {"n": 3}
        del view["svc:c"]
        assert writes.pending == 4
        # RocksDB gets them at the flush, in one write per database.
        assert store._encode_key("svc:a") not in store._db_for_partition(2)
        futures = await writes.flush()
        assert writes.pending == 0 and changelog_writes.take() == futures
        assert counted == [4]  # counted as sent, as Faust's send path would have
        assert len(futures) == 1  # one batch: one table partition
        producer.acknowledge()
        await asyncio.sleep(0)  # done-callbacks run

    asyncio.run(scenario())

    # What Faust's table would have sent: its changelog topic, its key and value bytes.
    expected = [
        ("svc:a", b'{"n":1}'),
        ("svc:b", topic.prepare_value({"n": 2, "x": "\u00e9"}, table.value_serializer)[0]),
        ("svc:c", topic.prepare_value({"n": 3}, table.value_serializer)[0]),
        ("svc:c", None),
    ]
    assert producer.sent == [
        (topic.get_topic_name(), 2, topic.prepare_key(key, table.key_serializer)[0], value)
        for key, value in expected
    ]
    # Faust's own store reads them, in partition 2 only.
    make_current(event := _Event(2))
    assert store["svc:a"] == {"n": 1} and store["svc:b"] == {"n": 2, "x": "\u00e9"}
    assert "svc:c" not in store
    make_current(event := _Event(1))
    assert "svc:a" not in store
    del event
    # One persisted offset per table partition, the last record's.
    assert store.persisted_offset(SimpleNamespace(partition=2)) == 3
    assert store.persisted_offset(SimpleNamespace(partition=1)) is None
    assert orjson.loads(store._db_for_partition(2)[store._encode_key("svc:a")]) == {"n": 1}


def test_a_failed_record_stores_no_offset_and_its_step_sees_the_failure(tmp_path):
    table = _table(tmp_path)
    producer = FakeProducer()
    writes = DirectWrites(SimpleNamespace(producer=producer, monitor=None))

    async def scenario() -> list[asyncio.Future]:
        writes.put(table, 0, "k", b"1")
        futures = await writes.flush()
        producer.fail(RuntimeError("broker refused"))
        await asyncio.sleep(0)
        return futures

    futures = asyncio.run(scenario())
    assert table.data.persisted_offset(SimpleNamespace(partition=0)) is None
    try:
        changelog_writes.all_confirmed(futures)
    except RuntimeError as exc:
        assert "broker refused" in str(exc)
    else:
        raise AssertionError("a failed changelog record must fail its step")


def test_a_step_journal_goes_out_and_is_acknowledged_before_the_writes_it_covers(tmp_path):
    """With direct writes the journal record takes the same path as the tables' writes
    (app/runtime/journal.py): it is written to RocksDB and sent first, the step's writes go
    out only once Kafka has it, and a journal recovering the partition reads it back."""
    table = _table(tmp_path)
    journal_table = table.app.Table(
        "journal",
        default=None,
        partitions=4,
        schema=faust.Schema(key_serializer="json", value_serializer="raw"),
    )
    journal_table.value_serializer = "raw"  # as tables/definitions.py sets a journal's
    producer = FakeProducer(partitions=4)
    monitor = SimpleNamespace(count_sent=lambda n: None)
    writes = DirectWrites(SimpleNamespace(producer=producer, monitor=monitor))
    cached = CachedTable(table, 16, direct=writes)
    journal = Journal(journal_table, {"state": cached}, name="test", direct=writes)
    journal_topic = journal_table.changelog_topic.get_topic_name()
    state_topic = table.changelog_topic.get_topic_name()
    last = _Event(2, offset=41)

    async def scenario() -> None:
        changelog_writes.start()
        staged = StagedState(cached.partition_view(2), owner=2)
        staged["svc:a"] = {"n": 1}
        staged.encode(dumps_value)
        step = asyncio.ensure_future(journal.commit({2: {"state": staged}}, {}, {2: last}))
        for _ in range(5):
            await asyncio.sleep(0)
        assert [(topic, partition) for topic, partition, *_ in producer.sent] == [
            (journal_topic, 2)
        ]
        assert not step.done()  # waiting for the journal record's acknowledgement
        assert table.data._encode_key("svc:a") not in table.data._db_for_partition(2)
        producer.acknowledge()
        await step
        assert [topic for topic, *_ in producer.sent] == [journal_topic, state_topic]

    asyncio.run(scenario())
    make_current(last)
    assert table.data["svc:a"] == {"n": 1, "p": 2}
    state: dict[str, Any] = {}
    again = Journal(journal_table, {"state": state}, name="test")
    assert again.recover(2) == [] and state == {"svc:a": {"n": 1, "p": 2}}
    assert journal_table.data.persisted_offset(SimpleNamespace(partition=2)) == 0
