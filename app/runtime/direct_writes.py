"""Table writes applied straight to a Faust table's RocksDB store and changelog topic.

Faust applies a table write through its mapping layers and serializer registry, writes it to
RocksDB, puts its changelog record in a `FutureMessage` in the producer buffer, whose task
hands it to the producer through the topic's send path and sensors, and, once Kafka has it,
writes the record's offset to RocksDB again (the table's persisted offset): all per record,
for every key a batch writes (~9 % of a worker's CPU in a `make bench` profile).

`DirectWrites` does what those layers come to: `put`/`delete` add to one RocksDB `WriteBatch`
per partition database and queue the changelog record; `flush` writes each batch (one write
instead of one per key: ~40 % less per 2 KB value, measured) and hands the queue to the
producer as one batch per changelog partition (app/runtime/producer.py), and stores each
partition's persisted offset from its batch's acknowledgement. Until `flush`, the store does
not see the writes: the table cache holds every key written (app/runtime/table_cache.py), and
the journal flushes right after a step's writes are applied, with no await in between
(app/runtime/journal.py). The bytes are Faust's: keys encoded by the store's codec, values as
the table stores them, tombstones for deletes. The futures go to the writing task's tracked
records (app/runtime/changelog_writes.py), as Faust's would, and the records count as sent in
Faust's monitor (in total, as Vigil's outputs do, not per topic).
"""

from __future__ import annotations

import asyncio
from typing import Any

from rocksdict import WriteBatch

from app.metrics.faust_sensor import count_sent
from app.runtime import changelog_writes
from app.runtime.producer import SentBatch, kafka_producer, send_records

#: Encoded keys remembered per table (entity keys repeat); the memo is cleared when full.
_KEY_MEMO = 65_536


def for_agent(app: Any, settings: Any) -> DirectWrites | None:
    """A `DirectWrites` for one agent's cached tables and journal, or None where they go
    through Faust's tables: turned off (`VIGIL_DIRECT_WRITES`), no table cache, a memory
    store, or `exactly_once` (the records are not part of Faust's transactions)."""
    if (
        settings.direct_writes
        and settings.store_is_rocksdb
        and settings.table_cache_keys
        and settings.processing_guarantee == "at_least_once"
    ):
        return DirectWrites(app)
    return None


class DirectWrites:
    """One agent's table writes to RocksDB and the changelogs, flushed once per step (each
    agent has its own: a flush sends only what its own task wrote)."""

    def __init__(self, app: Any) -> None:
        #: the Faust app, whose producer sends the records
        self.app = app
        self._queue: list[tuple[Any, int, bytes, bytes | None]] = []
        self._keys: dict[int, dict[str, bytes]] = {}
        #: Each RocksDB database's writes not written yet, with the database.
        self._batches: dict[int, tuple[Any, WriteBatch]] = {}

    def put(self, table: Any, partition: int, key: str, data: bytes) -> None:
        """Store `data` (the value as the table stores it) under `key` in `partition`."""
        store = table.data
        key_bytes = self._key(store, key)
        self._batch(store, partition).put(key_bytes, data)
        store._key_index[key_bytes] = partition
        self._queue.append((table, partition, key_bytes, data))

    def delete(self, table: Any, partition: int, key: str) -> None:
        """Remove `key` from `partition` (a tombstone goes to the changelog)."""
        store = table.data
        key_bytes = self._key(store, key)
        self._batch(store, partition).delete(key_bytes)
        self._queue.append((table, partition, key_bytes, None))

    def _batch(self, store: Any, partition: int) -> WriteBatch:
        db = store._db_for_partition(partition)
        pending = self._batches.get(id(db))
        if pending is None:
            pending = self._batches[id(db)] = (db, WriteBatch(raw_mode=True))
        return pending[1]

    def write(self) -> None:
        """Write the puts and deletes so far to RocksDB, one write per database."""
        batches, self._batches = self._batches, {}
        for db, batch in batches.values():
            db.write(batch)

    @property
    def pending(self) -> int:
        """Changelog records queued and not flushed yet."""
        return len(self._queue)

    async def flush(self) -> list[asyncio.Future]:
        """Write the puts and deletes to RocksDB (`write`), then send the queued changelog
        records; returns the futures of their acknowledgements (also tracked for the current
        task). Each table partition's persisted offset is stored when its last record is
        acknowledged."""
        self.write()
        queue, self._queue = self._queue, []
        if not queue:
            return []
        stores = {}
        records = []
        for table, partition, key_bytes, data in queue:
            topic = table.changelog_topic.get_topic_name()
            stores[topic] = table.data
            records.append((topic, partition, key_bytes, data))
        batches = await send_records(kafka_producer(self.app), records)
        futures = [batch.future for batch in batches]
        for batch in batches:  # a partition's later batch is acknowledged after its earlier
            batch.future.add_done_callback(_persist_offset(stores[batch.topic], batch))
        changelog_writes.add(futures)
        count_sent(self.app, len(records))
        return futures

    def _key(self, store: Any, key: str) -> bytes:
        memo = self._keys.get(id(store))
        if memo is None or len(memo) >= _KEY_MEMO:
            memo = self._keys[id(store)] = {}
        key_bytes = memo.get(key)
        if key_bytes is None:
            key_bytes = memo[key] = store._encode_key(key)
        return key_bytes


def _persist_offset(store: Any, batch: SentBatch) -> Any:
    """A done-callback storing the offset of an acknowledged batch's last changelog record as
    the partition's persisted offset (what Faust's `_on_changelog_sent` does for every record)."""

    def persist(future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # the agent's step sees the failure (changelog_writes.all_confirmed)
        metadata = future.result()
        store.set_persisted_offset(metadata.topic_partition, metadata.offset + batch.count - 1)

    return persist
