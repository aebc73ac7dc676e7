"""Decoded table values kept in memory for the process and risk agents, per table and
partition.

A Faust table read goes through Faust's mapping layers, a RocksDB `get` and an orjson decode
every time: in a `make bench` profile about 10 % of a worker's CPU, mostly for keys read
again by the next events (an entity's stats, its held events, a partition's clock record). A
`CachedTable` keeps the values it read or wrote, per partition (the same key, such as the
partition clock record, lives in every partition's store), up to `max_keys` per table.

Only one agent writes a cached table's partitions, and every one of its writes goes through
the cache (the staged writes of a batch, the journal's redo), so a cached value is the stored
one. What can change a store behind it is a rebalance: changelog recovery of a newly
assigned partition, and another worker's writes while it held one. So the agent drops a
partition's cached values before its first event after every assignment (when it applies the
partition's journal again: agents/process.py, agents/risk.py) and everything on revocation.
Global tables (written by every worker) are not cached.

A write is serialized once (`put_encoded`): the same bytes go to the journal record, the
RocksDB store and the changelog record, where Faust would serialize a value twice more. With
`direct` (the worker on RocksDB), writes skip Faust's table layers
(app/runtime/direct_writes.py).
Values are handed out as stored, as `StagedState` always did (and dicts do offline): callers
copy before they change one.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from faust.streams import current_event

from app.runtime.direct_writes import DirectWrites

_MISSING = object()


class PartitionView:
    """One partition of a `CachedTable`. Reads and writes go to the partition of Faust's
    current event, which the caller makes an event of this partition."""

    __slots__ = ("_owner", "_partition", "_values")

    def __init__(self, owner: CachedTable, partition: int) -> None:
        self._owner = owner
        self._partition = partition
        self._values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """The value of `key` (decoded once, then from memory)."""
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            self._owner.stats["misses"] += 1
            value = self._owner.table.get(key)
            self._remember(key, value)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        owner = self._owner
        if owner.direct is not None:
            owner.direct.put(
                owner.table, self._partition, key, owner.table.data._encode_value(value)
            )
        else:
            owner.table[key] = value
        self._remember(key, value)

    def put_encoded(self, key: str, value: Any, data: bytes) -> None:
        """Store `value` already serialized as `data` (JSON of the table's codec)."""
        owner = self._owner
        if owner.direct is not None:
            owner.direct.put(owner.table, self._partition, key, data)
        else:
            owner.table[key] = data if owner.stores_bytes else value
        self._remember(key, value)

    def __delitem__(self, key: str) -> None:
        if self.get(key) is not None:  # the cached answer: no second store read
            owner = self._owner
            if owner.direct is not None:
                owner.direct.delete(owner.table, self._partition, key)
            else:
                del owner.table[key]
        self._remember(key, None)

    def items(self) -> Any:
        """The table's items from the store: those of every partition this worker holds, as
        Faust's table gives them (`owned_by` picks one partition's)."""
        return self._owner.table.items()

    def clear(self) -> None:
        """Forget the cached values (the store is unchanged)."""
        self._owner.size -= len(self._values)
        self._values.clear()

    def _remember(self, key: str, value: Any) -> None:
        values = self._values
        if key not in values:
            owner = self._owner
            if owner.size >= owner.max_keys:
                owner.evict()
            owner.size += 1
        values[key] = value


def cache_table(table: Any, settings: Any, direct: DirectWrites | None) -> Any:
    """`table` behind a `CachedTable` of `settings.table_cache_keys` values (`direct`: its
    writes straight to RocksDB), or the table itself when the cache is off."""
    if settings.table_cache_keys == 0:
        return table
    return CachedTable(
        table, settings.table_cache_keys, stores_bytes=settings.store_is_rocksdb, direct=direct
    )


def partition_view(table: Any, partition: int) -> Any:
    """The cached view of one partition of `table` if it is a `CachedTable`, else the table
    (which reads and writes under Faust's current event)."""
    view = getattr(table, "partition_view", None)
    return view(partition) if view is not None else table


def forget_cached(table: Any, partition: int | None = None) -> None:
    """Drop what a `CachedTable` holds of `partition` (every partition: None); nothing for
    a plain table."""
    if isinstance(table, CachedTable):
        table.forget(partition)


class CachedTable(MutableMapping):
    """A Faust table with its decoded values cached per partition (see the module docstring).

    As a mapping it reads and writes under Faust's current event, like the table itself;
    `partition_view(p)` is the view the batch loop uses. Iteration goes to the table.
    """

    def __init__(
        self,
        table: Any,
        max_keys: int,
        *,
        stores_bytes: bool = True,
        direct: DirectWrites | None = None,
    ) -> None:
        self.table = table
        self.max_keys = max(1, max_keys)
        #: Whether the table's store keeps serialized values (RocksDB); a memory store keeps
        #: objects, so `put_encoded` gives it the value itself.
        self.stores_bytes = stores_bytes
        #: Writes go straight to RocksDB and the changelog through this, flushed by the agent's
        #: journal (app/runtime/direct_writes.py); None: through Faust's table.
        self.direct = direct
        self.size = 0
        self._views: dict[int, PartitionView] = {}
        #: values read from the store and values evicted, since start
        self.stats = {"misses": 0, "evicted": 0}

    def partition_view(self, partition: int) -> PartitionView:
        """The cached view of one partition."""
        view = self._views.get(partition)
        if view is None:
            view = self._views[partition] = PartitionView(self, partition)
        return view

    def forget(self, partition: int | None = None) -> None:
        """Drop the cached values of `partition`, or of every partition."""
        views = self._views.values() if partition is None else [self._views.get(partition)]
        for view in views:
            if view is not None:
                view.clear()

    def evict(self) -> None:
        """Make room for one value: the oldest of the largest partition's goes."""
        view = max(self._views.values(), key=lambda v: len(v._values))
        if view._values:
            del view._values[next(iter(view._values))]
            self.size -= 1
            self.stats["evicted"] += 1

    def _current(self) -> PartitionView:
        event = current_event()
        if event is None:
            raise RuntimeError("a CachedTable is used under an event of its partition")
        return self.partition_view(event.message.partition)

    def get(self, key: str, default: Any = None) -> Any:
        return self._current().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._current()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._current()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._current()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._current()

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)

    def items(self) -> Any:  # type: ignore[override]
        """The table's items (all partitions this worker holds), from the store."""
        return self.table.items()
