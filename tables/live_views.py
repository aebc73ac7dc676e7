"""In-memory projections of this worker's alert and entity tables for the web view, kept up
to date from the process agent's writes instead of scanning the tables on every request.

A full scan of 5,000 alerts and 10,000 entities reads and decodes every value (hundreds of
milliseconds, holding the worker's event loop); the pages need a few fields of each. An index
is built once from a scan (`rebuild`), then follows each applied write (`apply`). It is
display only, like tables/history.py: nothing reads it back into the pipeline. It is marked
stale when partitions move (a rebalance) and every `REBUILD_S` seconds, in case a write
reached the table without passing here (a journal redo after a crash), and rebuilt on its
next use. Its size follows the table's: one projection per alert instance or entity.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable
from typing import Any

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

    @property
    def stale(self) -> bool:
        """Whether the next use must rebuild it from the table."""
        return self.built_at is None or self.clock() - self.built_at > REBUILD_S

    def invalidate(self) -> None:
        """Rebuild on next use (partitions moved)."""
        self.built_at = None
        self.items = {}
        self.version += 1

    def rebuild(self, table_items: Iterable[tuple[Any, Any]]) -> None:
        """Take every value of the table again."""
        items: dict[str, dict[str, Any]] = {}
        for key, value in table_items:
            if isinstance(key, str) and not key.startswith("~"):
                projected = self.project(value)
                if projected is not None:
                    items[key] = projected
        self.items = items
        self.built_at = self.clock()
        self.version += 1

    def apply(self, writes: Iterable[tuple[str, bool, Any]]) -> None:
        """Follow `(key, deleted, value)` writes (ignored until the index is built: the
        rebuild will read them from the table)."""
        if self.built_at is None:
            return
        for key, deleted, value in writes:
            projected = None if deleted else self.project(value)
            if projected is None:
                self.items.pop(key, None)
            else:
                self.items[key] = projected
        self.version += 1

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
