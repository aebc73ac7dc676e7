"""In-memory projections of this worker's alert and entity tables for the web view, kept up
to date from the process agent's writes instead of scanning the tables on every request.

A full scan of 5,000 alerts and 10,000 entities reads and decodes every value (hundreds of
milliseconds, holding the worker's event loop); the pages need a few fields of each. An index
is built once from a scan (`rebuild`, or `rebuild_chunked` on the worker's event loop), then
follows each applied write (`apply`). It is display only, like app/web/history.py: nothing reads
it back into the pipeline. It is emptied when partitions move (a rebalance) and goes stale
every `REBUILD_S` seconds, in case a write reached the table without passing here (a journal
redo after a crash); app/web/snapshots.py then rebuilds it in the background. Its size follows
the table's: one projection per alert instance or entity.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

#: Annotations the alerts page shows (app/web/alert_groups.py); the rest stay in the table.
ALERT_ANNOTATIONS = (
    "summary",
    "title",
    "installed_version",
    "fixed_version",
    "container_name",
    "container_id",
    "command",
    "file",
    "user",
    "pod",
)
ALERT_FIELDS = (
    "t",
    "fp",
    "entity",
    "source",
    "kind",
    "labels",
    "group",
    "status",
    "severity",
    "count",
    "score",
    "last_seen",
    "first_seen",
    "silenced_by",
)
ENTITY_FIELDS = ("entity", "events", "max_severity", "by_source", "last_time", "last_ts_ms")
#: Seconds after which an index is rebuilt from its table on next use.
REBUILD_S = 300.0
#: Values read between two yields to the event loop by a chunked scan: reading and decoding
#: 200 table values takes a few milliseconds, so a request waits at most that long behind one.
CHUNK = 200


async def chunked(items: Iterable[T], chunk: int = CHUNK) -> AsyncIterator[T]:
    """`items`, yielding to the event loop after every `chunk` of them: a scan of a large
    table then never holds the loop (and the requests and agents waiting on it) for long."""
    for count, item in enumerate(items, 1):
        yield item
        if count % chunk == 0:
            await asyncio.sleep(0)


def alert_projection(value: Any) -> dict[str, Any] | None:
    """What the pages use of an alert table value (None: not an alert instance)."""
    if not isinstance(value, dict) or value.get("t") != "alert" or not value.get("status"):
        return None
    out = {k: value.get(k) for k in ALERT_FIELDS}
    annotations = value.get("annotations") or {}
    out["annotations"] = {k: annotations[k] for k in ALERT_ANNOTATIONS if annotations.get(k)}
    return out


def entity_projection(value: Any) -> dict[str, Any] | None:
    """What the pages use of an entity-stats value (None: bookkeeping)."""
    if not isinstance(value, dict) or "entity" not in value:
        return None
    return {k: value.get(k) for k in ENTITY_FIELDS}


class LiveIndex:
    """key -> projection of one table's values, following its writes."""

    def __init__(self, project: Any, clock: Any = time.monotonic) -> None:
        self.project = project
        self.clock = clock
        self.items: dict[str, dict[str, Any]] = {}
        self.built_at: float | None = None
        self.version = 0  # changes whenever the content may have
        self._generation = 0  # changes when emptied: a scan begun before then is dropped
        self._during_scan: list[tuple[str, bool, Any]] | None = None  # writes a scan may miss

    @property
    def stale(self) -> bool:
        """Whether the next use must rebuild it from the table."""
        return self.built_at is None or self.clock() - self.built_at > REBUILD_S

    def invalidate(self) -> None:
        """Empty it: rebuilt on next use (partitions moved); a scan under way is dropped."""
        self.built_at = None
        self.items = {}
        self.version += 1
        self._generation += 1
        self._during_scan = None

    def rebuild(self, table_items: Iterable[tuple[Any, Any]]) -> None:
        """Take every value of the table again, in one go."""
        items: dict[str, dict[str, Any]] = {}
        for key, value in table_items:
            self._take(items, key, value)
        self._built(items)

    async def rebuild_chunked(self, table_items: Iterable[tuple[Any, Any]]) -> bool:
        """Take every value of the table again, yielding to the event loop every `CHUNK`
        values; the index in hand serves meanwhile. Writes applied during the scan are
        replayed after it (the scan may have read a key before its write). False when the
        index was emptied meanwhile (partitions moved): the scan is dropped."""
        generation = self._generation
        self._during_scan = []
        items: dict[str, dict[str, Any]] = {}
        try:
            async for key, value in chunked(table_items):
                if self._generation != generation:
                    return False
                self._take(items, key, value)
            if self._generation != generation:
                return False
            self._follow(items, self._during_scan or ())
        finally:
            if self._generation == generation:
                self._during_scan = None
        self._built(items)
        return True

    def _take(self, items: dict[str, dict[str, Any]], key: Any, value: Any) -> None:
        if isinstance(key, str) and not key.startswith("~"):
            projected = self.project(value)
            if projected is not None:
                items[key] = projected

    def _built(self, items: dict[str, dict[str, Any]]) -> None:
        self.items = items
        self.built_at = self.clock()
        self.version += 1

    def apply(self, writes: Iterable[tuple[str, bool, Any]]) -> None:
        """Follow `(key, deleted, value)` writes (ignored until the index is built: the
        rebuild will read them from the table, or replay them if it is under way)."""
        if self._during_scan is not None:
            writes = list(writes)
            self._during_scan.extend(writes)
        if self.built_at is None:
            return
        self._follow(self.items, writes)
        self.version += 1

    def _follow(
        self, items: dict[str, dict[str, Any]], writes: Iterable[tuple[str, bool, Any]]
    ) -> None:
        for key, deleted, value in writes:
            projected = None if deleted else self.project(value)
            if projected is None:
                items.pop(key, None)
            else:
                items[key] = projected

    def values(self) -> list[dict[str, Any]]:
        return list(self.items.values())


def entity_summary(index: LiveIndex, recent: int) -> dict[str, Any]:
    """`{"count", "events", "recent": [the `recent` most recently active entities]}`."""
    values = index.items.values()
    return {
        "count": len(index.items),
        "events": sum(v.get("events") or 0 for v in values),
        "recent": heapq.nlargest(recent, values, key=lambda v: v.get("last_ts_ms") or 0),
    }


def writes_of(changes: Iterable[tuple[str, tuple[bool, Any]]]) -> list[tuple[str, bool, Any]]:
    """`StagedState.changes()` as `(key, deleted, value)` (taken before the commit, whose
    encoding would turn values into bytes)."""
    return [(key, deleted, value) for key, (deleted, value) in changes]
