"""Events held per entity until the partition clock passes them, for the stages that decide in
the order they apply events (compliance, drift).

A worker reads the raw topics at their own paces, so two events of one entity from different
sources (a Terraform plan and a CloudTrail change, a scan and a deployment) reach its
`vigil.events` partition in an order that differs from run to run. The compliance and drift
stages keep state per entity and decide from the events they applied before, so they see an
entity's events in event-time order instead: each waits here until the partition clock
(tables/partition_clock.py) passes it, then all of an entity's due events are applied in
`(time, id)` order.

State: key `<entity>|~held` in the `observed` table, `{"t": "held", "p": partition, "_o":
offset of the last event held, "seq": release counter, "ev": [event dicts, sorted]}`. The
record is kept (with an empty list) once it exists: `seq` only grows. Each released event gets
the next `seq` as its offset marker in the stages' state (`_o`), so a crash that repeats a
release repeats it with the same markers and the stages recognise what they applied; `seq`
starts above any Kafka offset, so state written with offsets before reads as older.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from app.events import Event
from tables.due_heap import DueHeap
from tables.staged import StagedState

HELD_MARK = "~held"
#: Most events held per entity. Beyond it the oldest are applied at once, without waiting for
#: the clock (their outputs then follow the arrival order again): a hot entity on a partition
#: whose sources drift far apart must not grow one state record without bound (a changelog
#: record must stay well under the broker's 1 MB message size).
MAX_HELD = 250
#: First release marker: above any offset a partition will reach.
SEQ_BASE = 2**40


def held_key(entity: str) -> str:
    """The state key of an entity's held events."""
    return f"{entity}|{HELD_MARK}"


def _order(event: dict[str, Any]) -> tuple[int, str]:
    return int(event["ts_ms"]), str(event["id"])


class HeldSchedule(DueHeap):
    """In-memory min-heap of (time of the first held event, key) for one partition; a popped
    key may be stale (its events released already): `release` checks the stored record."""

    @classmethod
    def rebuild(cls, items: Iterable[tuple[str, Any]], partition: int) -> HeldSchedule:
        """A schedule from the `(key, value)` items of the `observed` table for `partition`."""
        schedule = cls()
        for key, value in items:
            if (
                isinstance(value, dict)
                and value.get("t") == "held"
                and value.get("p") == partition
                and value.get("ev")
            ):
                schedule.push(_order(value["ev"][0])[0], key)
        return schedule


def hold(
    observed: StagedState,
    event: Event,
    partition: int,
    offset: int | None,
    schedule: HeldSchedule,
) -> int | None:
    """Hold `event` (read at `offset`; a replay of a held offset is not held twice). Returns
    the time up to which held events must be released at once to keep `MAX_HELD`, if any."""
    key = held_key(event.entity)
    stored = observed.get(key)
    record = dict(stored) if stored else {"t": "held", "p": partition, "_o": -1, "seq": SEQ_BASE}
    if offset is not None and record["_o"] >= offset:
        return None
    events = list(record.get("ev") or [])
    value = event.to_dict()
    order = _order(value)
    index = bisect.bisect_right(events, order, key=_order)
    events.insert(index, value)
    record.update(ev=events, _o=offset if offset is not None else record["_o"])
    observed[key] = record
    if index == 0:
        schedule.push(order[0], key)
    if len(events) > MAX_HELD:
        return int(events[len(events) - MAX_HELD - 1]["ts_ms"])
    return None


def release(
    observed: StagedState, key: str, clock: int | float, schedule: HeldSchedule
) -> list[tuple[int, Event]]:
    """Take the events of `key` at or before `clock`, in order, each with its offset marker
    for the stages' state; reschedule what is left."""
    stored = observed.get(key)
    if not stored or not stored.get("ev"):
        return []
    events = list(stored["ev"])
    count = 0
    while count < len(events) and events[count]["ts_ms"] <= clock:
        count += 1
    if count == 0:
        schedule.push(_order(events[0])[0], key)  # a stale heap entry: put it back
        return []
    seq = stored["seq"]
    due = [(seq + 1 + i, Event.from_dict(value)) for i, value in enumerate(events[:count])]
    rest = events[count:]
    observed[key] = {**stored, "ev": rest, "seq": seq + count}
    if rest:
        schedule.push(_order(rest[0])[0], key)
    return due
