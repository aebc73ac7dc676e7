"""Events held per entity until the partition clock passes them (tables/held.py)."""

from __future__ import annotations

from typing import Any

from app.events import Event
from tables import held
from tables.staged import StagedState


def event(ts: int, entity: str = "tf:aws_s3_bucket.logs", ident: str | None = None) -> Event:
    return Event.from_dict(
        {
            "id": ident or f"e{ts}",
            "source": "terraform",
            "type": "tf_change",
            "entity": entity,
            "ts_ms": ts,
            "time": "2026-01-01T00:00:00.000Z",
            "severity": "info",
            "attributes": {},
        }
    )


def test_release_in_time_then_id_order_with_growing_markers():
    table: dict[str, Any] = {}
    observed, schedule = StagedState(table), held.HeldSchedule()
    for offset, (ts, ident) in enumerate([(30, "b"), (10, "z"), (30, "a"), (50, "c")]):
        held.hold(observed, event(ts, ident=ident), 0, offset, schedule)
    held.hold(observed, event(10, ident="z"), 0, 1, schedule)  # a replayed offset: not twice
    _, key = schedule.pop_due(30)
    assert key == held.held_key("tf:aws_s3_bucket.logs")
    released = held.release(observed, key, 30, schedule)
    assert [(e.ts_ms, e.id) for _, e in released] == [(10, "z"), (30, "a"), (30, "b")]
    markers = [marker for marker, _ in released]
    assert markers == sorted(markers) and markers[0] > held.SEQ_BASE
    while (stale := schedule.pop_due(49)) is not None:  # stale entries release nothing
        assert held.release(observed, stale[1], 49, schedule) == []
    assert schedule.pop_due(50) == (50, key)
    later = held.release(observed, key, 50, schedule)
    assert [marker for marker, _ in later] == [markers[-1] + 1]
    observed.commit()
    rebuilt = held.HeldSchedule.rebuild(table.items(), 0)
    assert len(rebuilt) == 0  # nothing left held


def test_a_hold_is_bounded():
    observed, schedule = StagedState({}), held.HeldSchedule()
    cutoffs = [
        held.hold(observed, event(1000 + n), 0, n, schedule) for n in range(held.MAX_HELD + 2)
    ]
    assert cutoffs[: held.MAX_HELD] == [None] * held.MAX_HELD
    assert cutoffs[-1] == 1001  # the two oldest must go now, whatever the clock
    key = held.held_key("tf:aws_s3_bucket.logs")
    assert len(held.release(observed, key, cutoffs[-1], schedule)) == 2
    assert len(observed.get(key)["ev"]) == held.MAX_HELD
