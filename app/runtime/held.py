"""Events held per entity until the partition clock passes them, for the stages that decide in
the order they apply events (compliance, drift).

A worker reads the raw topics at their own paces, so two events of one entity from different
sources (a Terraform plan and a CloudTrail change, a scan and a deployment) reach its
`vigil.events` partition in an order that differs from run to run. The compliance and drift
stages keep state per entity and decide from the events they applied before, so they see an
entity's events in event-time order instead: each waits here until the partition clock
(app/runtime/partition_clock.py) passes it, then all of an entity's due events are applied in
`(time, id)` order.

State: key `<entity>|~held` in the runtime's `held` table, `{"t": "held", "ev":
[event dicts, sorted], "spill": [spill buckets], "spilled": count}`: the earliest `INLINE_HELD`
events in the record, later ones in spill records `<entity>|~held|<bucket>` (`{"t":
"held_spill", "ev": [...]}`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.model.events import Event
from app.runtime import spill
from app.runtime.due_heap import DueHeap
from app.runtime.staged import StagedState

HELD_MARK = "~held"
#: Most events held per entity. Beyond it the oldest are applied at once, without waiting for
#: the clock (their outputs then follow the arrival order again): a hot entity on a partition
#: whose sources drift far apart must not grow its state without bound.
MAX_HELD = 5_000
#: Held events kept in the entity's record (the earliest); later ones wait in spill records
#: of `SPILL_BUCKET_MS` of event time each (`<entity>|~held|<bucket>`, at most
#: `SPILL_BUCKET_MAX` events, ~1 KB each), so no record nears Kafka's 1 MB limit and holding
#: an event rewrites two small records (the entity's and one bucket), not everything held:
#: with 100 inline and 10 s buckets a backlog rewrote ~100 KB per entity and batch, the
#: largest share of a worker's changelog bytes (docs/performance.md).
INLINE_HELD = 16
SPILL_BUCKET_MS = 1_000
SPILL_BUCKET_MAX = 250


def held_key(entity: str) -> str:
    """The state key of an entity's held events."""
    return f"{entity}|{HELD_MARK}"


def _order(event: dict[str, Any]) -> tuple[int, str]:
    return int(event["ts_ms"]), str(event["id"])


#: Where an entity holds its events (app/runtime/spill.py): `ev`, then `<entity>|~held|<bucket>`.
HELD = spill.Layout(inline="ev", items="ev", kind="held_spill", time="ts_ms", order=_order)


class HeldSchedule(DueHeap):
    """In-memory min-heap of (time of the first held event, key) for one partition; a popped
    key may be stale (its events released already): `release` checks the stored record."""

    @classmethod
    def rebuild(cls, items: Iterable[tuple[str, Any]]) -> HeldSchedule:
        """A schedule from one partition's `(key, value)` items of the `held` table."""
        schedule = cls()
        for key, value in items:
            if isinstance(value, dict) and value.get("t") == "held" and value.get("ev"):
                schedule.push(_order(value["ev"][0])[0], key)
        return schedule


def hold(
    holds: StagedState,
    event: Event,
    schedule: HeldSchedule,
) -> int | None:
    """Hold `event`. Returns the time up to which held events must be released at once to
    keep `MAX_HELD` (or a spill record within `SPILL_BUCKET_MAX`), if any."""
    key = held_key(event.entity)
    stored = holds.get(key)
    record = dict(stored) if stored else {"t": "held"}
    record.update(ev=list(record.get("ev") or []), spill=list(record.get("spill") or []))
    value = event.to_dict()
    order = _order(value)
    limits = (INLINE_HELD, SPILL_BUCKET_MS, SPILL_BUCKET_MAX)
    cutoff = spill.add(holds, key, record, value, HELD, limits)
    holds[key] = record
    if record["ev"] and _order(record["ev"][0]) == order:
        schedule.push(order[0], key)
    excess = spill.count(record, HELD) - MAX_HELD
    if excess > 0:
        cutoff = max(cutoff or 0, spill.nth_time(holds, key, record, excess, HELD))
    return cutoff


def release(
    holds: StagedState, key: str, clock: int | float, schedule: HeldSchedule
) -> list[Event]:
    """Take the events of `key` at or before `clock`, in order; reschedule what is left.
    Spill records come back into the entity's record as its own events run out."""
    stored = holds.get(key)
    if not stored or not (stored.get("ev") or stored.get("spill")):
        return []
    record = {
        **stored,
        "ev": list(stored.get("ev") or []),
        "spill": list(stored.get("spill") or []),
    }
    taken: list[dict[str, Any]] = []
    changed = False
    while True:
        changed |= spill.refill(holds, key, record, HELD)
        events = record["ev"]
        count = 0
        while count < len(events) and events[count]["ts_ms"] <= clock:
            count += 1
        taken += events[:count]
        record["ev"] = events = events[count:]
        if events or not record["spill"]:
            break
    if not taken and not changed:
        if events:
            schedule.push(_order(events[0])[0], key)  # a stale heap entry: put it back
        return []
    due = [Event.from_dict(value) for value in taken]
    holds[key] = record
    if events:
        schedule.push(_order(events[0])[0], key)
    return due
