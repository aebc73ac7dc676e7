"""A time-sorted hold split over records: the earliest items in the owner's record, later ones
in spill records of a fixed span of event time, so no record nears Kafka's 1 MB limit and
holding an item rewrites one small record, not everything held.

Used for the events held per entity (app/runtime/held.py) and the signals held per risk subject
(tables/risk/stage.py). The owner record keeps `spill` (sorted bucket numbers) and `spilled` (items
in spill records); the spill record of bucket b is `<prefix>|<b>`. Invariant: every item in the
owner's list comes before every spilled item, and the list is empty only when nothing is
spilled (`refill` restores it after items were taken).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.runtime.staged import StagedState


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a hold keeps its items: `inline` list field of the owner record, `items` field of
    a spill record, its type tag `kind`, the items' `time` field and their sort `order`."""

    inline: str
    items: str
    kind: str
    time: str
    order: Callable[[Mapping[str, Any]], Any]


def spill_key(prefix: str, bucket: int) -> str:
    """The state key of one spill record."""
    return f"{prefix}|{bucket}"


def count(record: Mapping[str, Any], layout: Layout) -> int:
    """Items held, in the record and spilled."""
    return len(record.get(layout.inline) or []) + int(record.get("spilled") or 0)


def add(
    state: StagedState,
    prefix: str,
    record: dict[str, Any],
    item: dict[str, Any],
    layout: Layout,
    limits: tuple[int, int, int],
) -> int | None:
    """Hold `item` (the record's `inline` and `spill` lists are changed in place): in the
    record while it holds fewer than `inline_max` and nothing is spilled, else the latest of
    the record's and this one goes to its spill record. `limits`: (inline_max, bucket_ms,
    bucket_max). Returns the time up to which items must be taken at once to keep that spill
    record within `bucket_max`, if any."""
    inline_max, bucket_ms, bucket_max = limits
    held = record[layout.inline]
    spill = record.setdefault("spill", [])
    if not spill and len(held) < inline_max:
        bisect.insort(held, item, key=layout.order)
        return None
    if held and layout.order(item) < layout.order(held[-1]):
        bisect.insort(held, item, key=layout.order)
        item = held.pop()  # the latest held item moves out instead
    bucket = int(item[layout.time]) // bucket_ms
    stored = state.get(spill_key(prefix, bucket))
    entries = list(stored[layout.items]) if isinstance(stored, dict) else []
    bisect.insort(entries, item, key=layout.order)
    state[spill_key(prefix, bucket)] = {"t": layout.kind, layout.items: entries}
    if bucket not in spill:
        bisect.insort(spill, bucket)
    record["spilled"] = record.get("spilled", 0) + 1
    if len(entries) > bucket_max:
        return int(entries[len(entries) - bucket_max - 1][layout.time])
    return None


def refill(state: StagedState, prefix: str, record: dict[str, Any], layout: Layout) -> bool:
    """Move the earliest spill records into the owner record while it holds nothing; whether
    anything moved."""
    moved = False
    while not record[layout.inline] and record.get("spill"):
        bucket = record["spill"].pop(0)
        stored = state.get(spill_key(prefix, bucket))
        entries = list(stored[layout.items]) if isinstance(stored, dict) else []
        state.delete(spill_key(prefix, bucket))
        record[layout.inline] = entries
        record["spilled"] = record.get("spilled", 0) - len(entries)
        moved = True
    return moved


def nth_time(
    state: Mapping[str, Any] | StagedState,
    prefix: str,
    record: Mapping[str, Any],
    n: int,
    layout: Layout,
) -> int:
    """The time of the `n`-th earliest held item (1-based), spill records included."""
    for entries in _all(state, prefix, record, layout):
        if n <= len(entries):
            return int(entries[n - 1][layout.time])
        n -= len(entries)
    raise ValueError(f"{prefix}: fewer held items than {n}")


def spilled_items(
    state: Mapping[str, Any] | StagedState | None,
    prefix: str,
    record: Mapping[str, Any],
    layout: Layout,
) -> list[dict[str, Any]]:
    """Every spilled item, in order (none without `state`)."""
    if state is None:
        return []
    return [
        item for entries in _all(state, prefix, record, layout, inline=False) for item in entries
    ]


def _all(
    state: Mapping[str, Any] | StagedState,
    prefix: str,
    record: Mapping[str, Any],
    layout: Layout,
    inline: bool = True,
) -> list[list[dict[str, Any]]]:
    lists = [list(record.get(layout.inline) or [])] if inline else []
    for bucket in record.get("spill") or []:
        stored = state.get(spill_key(prefix, bucket))
        lists.append(stored[layout.items] if isinstance(stored, dict) else [])
    return lists
