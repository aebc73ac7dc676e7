"""The process agent's decoded-value cache and global-table snapshots (app/runtime/table_cache.py,
app/runtime/global_snapshot.py): same outputs and state as plain tables, values serialized once."""

from __future__ import annotations

import copy
from dataclasses import fields
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from app.codecs import dumps_value
from app.pipeline import Pipeline, PipelineState
from app.runtime import step_journal
from app.runtime.batch import Batch
from app.runtime.current_event import make_current
from app.runtime.global_snapshot import GlobalSnapshot
from app.runtime.table_cache import CachedTable
from app.settings import Settings
from tests.unit.runtime.test_partial_step import PARTITION, records

TABLES = tuple(f.name for f in fields(PipelineState))
GLOBAL = ("silences", "inhibitors")


class SerializingTable(dict):
    """Stands in for a Faust table on RocksDB: keeps bytes, decodes on every read, and calls
    the hooks Faust calls on a write."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.raw_writes = 0

    def __getitem__(self, key: str) -> Any:
        self.reads += 1
        return orjson.loads(super().__getitem__(key))

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if dict.__contains__(self, key) else default

    def __setitem__(self, key: str, value: Any) -> None:
        self.on_key_set(key, value)
        if isinstance(value, bytes):
            self.raw_writes += 1
        super().__setitem__(key, value if isinstance(value, bytes) else dumps_value(value))

    def __delitem__(self, key: str) -> None:
        self.on_key_del(key)
        super().__delitem__(key)

    def items(self) -> Any:
        return [(k, orjson.loads(v)) for k, v in dict.items(self)]

    def values(self) -> Any:
        return [v for _, v in self.items()]

    def on_key_set(self, key: str, value: Any) -> None:
        pass

    def on_key_del(self, key: str) -> None:
        pass

    def on_clear(self) -> None:
        pass

    def apply_changelog_batch(self, batch: Any) -> None:
        for key, value in batch:
            dict.__setitem__(self, key, value)


class FakeEvent:
    """What Faust's current event needs to have here (weak-referenceable)."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


#: Faust keeps a weak reference to the current event: these stay alive.
EVENTS = {p: FakeEvent(p) for p in (PARTITION, 1)}


def run(pipeline: Pipeline, recs: list, batch_size: int, journals: list | None = None) -> list:
    """Process `recs` in batches as the process agent does: encode, journal, commit."""
    make_current(EVENTS[PARTITION])
    outputs = []
    for start in range(0, len(recs), batch_size):
        batch = Batch(pipeline.state)
        for offset in range(start, min(start + batch_size, len(recs))):
            arrival, event = recs[offset]
            batch.begin_event()
            if event is None:
                step = pipeline.tick(PARTITION, arrival, batch)
            else:
                step = pipeline.process(copy.deepcopy(event), PARTITION, batch, arrival)
            outputs += step.outputs
        batch.encode(dumps_value)
        if journals is not None:
            writes = step_journal.writes_of(batch.tables_of(PARTITION))
            journals.append(step_journal.encode(step_journal.record(start, writes, [])))
        for staged in batch.for_partition(PARTITION):
            staged.commit()
    return outputs


@pytest.fixture(scope="module")
def recs():
    return records(Settings.from_env({}))


def test_cached_tables_give_the_same_outputs_and_state(recs):
    settings = Settings.from_env({})
    plain = Pipeline(settings)
    plain_journals: list[bytes] = []
    expected = run(plain, recs, 25, plain_journals)

    stores = {name: SerializingTable() for name in TABLES}
    state = PipelineState(
        **{
            name: GlobalSnapshot(stores[name])
            if name in GLOBAL
            else CachedTable(stores[name], max_keys=16)  # small: values are evicted too
            for name in TABLES
        }
    )
    cached = Pipeline(settings, state)
    journals: list[bytes] = []
    got = run(cached, recs, 25, journals)

    assert [(o.topic, o.key, o.value) for o in got] == [(o.topic, o.key, o.value) for o in expected]
    assert len(expected) > 100
    for name in TABLES:
        assert dict(stores[name].items()) == dict(getattr(plain.state, name)), name
    # The journal records hold the same JSON, with each value serialized once.
    assert journals == plain_journals
    # Every write reached the store as the bytes the journal holds; reads were cached.
    cached_stores = [stores[name] for name in TABLES if name not in GLOBAL]
    assert sum(s.raw_writes for s in cached_stores) > 100
    evicted = sum(getattr(state, name).stats["evicted"] for name in TABLES if name not in GLOBAL)
    assert evicted > 0
    reads = sum(s.reads for s in cached_stores)
    uncached = reads_without_cache(settings, recs)
    assert reads < uncached / 2, (reads, uncached)


def reads_without_cache(settings: Settings, recs: list) -> int:
    """Store reads of the same run over the stores without the cache."""
    stores = {name: SerializingTable() for name in TABLES}
    run(Pipeline(settings, PipelineState(**stores)), recs, 25)
    return sum(stores[name].reads for name in TABLES if name not in GLOBAL)


def test_a_view_reads_once_writes_through_and_forgets():
    store = SerializingTable()
    store["a"] = {"n": 1}
    table = CachedTable(store, max_keys=2)
    view = table.partition_view(0)
    assert view.get("a") == {"n": 1} and view.get("a") == {"n": 1}
    assert store.reads == 1 and table.stats["misses"] == 1
    view.put_encoded("b", {"n": 2}, dumps_value({"n": 2}))
    assert dict.__getitem__(store, "b") == b'{"n":2}' and view.get("b") == {"n": 2}
    del view["a"]
    assert "a" not in store and view.get("a") is None and view.get("a", 0) == 0
    view.get("c")  # a third key: the oldest goes
    assert table.size == 2 and table.stats["evicted"] == 1
    table.forget(0)
    assert table.size == 0 and view.get("b") == {"n": 2} and store.reads == 2


def test_a_memory_store_gets_the_object_not_bytes():
    store: dict[str, Any] = {}
    view = CachedTable(store, max_keys=8, stores_bytes=False).partition_view(3)
    view.put_encoded("k", {"x": 1}, b'{"x":1}')
    assert store["k"] == {"x": 1}


def test_partitions_are_cached_apart():
    make_current(EVENTS[1])
    store = SerializingTable()
    table = CachedTable(store, max_keys=8)
    table.partition_view(0)["~wm|*"] = {"clock": 0}
    table["~wm|*"] = {"clock": 1}  # the current event's partition: 1
    assert table.partition_view(0).get("~wm|*") == {"clock": 0}
    assert table.get("~wm|*") == {"clock": 1}


def test_a_snapshot_is_taken_again_after_any_change():
    store = SerializingTable()
    snapshot = GlobalSnapshot(store)
    assert dict(snapshot.items()) == {}
    store["s1"] = {"id": "s1"}  # this worker's write
    assert list(snapshot) == ["s1"]
    store.apply_changelog_batch([("s2", b'{"id":"s2"}')])  # another worker's, or recovery
    assert sorted(snapshot) == ["s1", "s2"]
    reads = store.reads
    assert len(snapshot.values()) == 2 and store.reads == reads  # no change: no new read
    del store["s1"]
    assert list(snapshot) == ["s2"]
    dict.__setitem__(store, "s3", b"{}")  # behind its back: seen after invalidate()
    assert "s3" not in snapshot
    snapshot.invalidate()
    assert "s3" in snapshot
