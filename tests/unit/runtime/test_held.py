"""Events held per entity until the partition clock passes them (app/runtime/held.py)."""

from __future__ import annotations

from typing import Any

from app.model.events import Event
from app.runtime import held
from app.runtime.staged import StagedState


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


def test_release_in_time_then_id_order():
    table: dict[str, Any] = {}
    observed, schedule = StagedState(table), held.HeldSchedule()
    for ts, ident in [(30, "b"), (10, "z"), (30, "a"), (50, "c")]:
        held.hold(observed, event(ts, ident=ident), schedule)
    _, key = schedule.pop_due(30)
    assert key == held.held_key("tf:aws_s3_bucket.logs")
    released = held.release(observed, key, 30, schedule)
    assert [(e.ts_ms, e.id) for e in released] == [(10, "z"), (30, "a"), (30, "b")]
    while (stale := schedule.pop_due(49)) is not None:  # stale entries release nothing
        assert held.release(observed, stale[1], 49, schedule) == []
    assert schedule.pop_due(50) == (50, key)
    later = held.release(observed, key, 50, schedule)
    assert [(e.ts_ms, e.id) for e in later] == [(50, "c")]
    observed.commit()
    rebuilt = held.HeldSchedule.rebuild(table.items())
    assert len(rebuilt) == 0  # nothing left held


def test_a_hold_is_bounded(monkeypatch):
    monkeypatch.setattr(held, "INLINE_HELD", 3)
    monkeypatch.setattr(held, "SPILL_BUCKET_MS", 10)
    monkeypatch.setattr(held, "MAX_HELD", 12)
    observed, schedule = StagedState({}), held.HeldSchedule()
    cutoffs = [held.hold(observed, event(1000 + n), schedule) for n in range(14)]
    assert cutoffs[:12] == [None] * 12
    assert cutoffs[12:] == [1000, 1001]  # the oldest must go now, whatever the clock
    key = held.held_key("tf:aws_s3_bucket.logs")
    assert len(held.release(observed, key, cutoffs[-1], schedule)) == 2
    record = observed.get(key)
    assert len(record["ev"]) <= 3 + 10 and len(record["ev"]) + record["spilled"] == 12


def test_one_spill_record_is_bounded_too(monkeypatch):
    monkeypatch.setattr(held, "INLINE_HELD", 2)
    monkeypatch.setattr(held, "SPILL_BUCKET_MAX", 3)
    observed, schedule = StagedState({}), held.HeldSchedule()
    cutoffs = [held.hold(observed, event(1000 + n), schedule) for n in range(7)]
    assert cutoffs[:5] == [None] * 5 and cutoffs[5] == 1002  # 4 in one spill record


def test_spilled_events_come_back_in_order(monkeypatch):
    """The same events released through spill records as through the record alone."""
    arrivals = [(ts, f"e{n}") for n, ts in enumerate([50, 10, 30, 90, 20, 70, 60, 40, 80, 15])]

    def released(inline: int) -> list[tuple[int, str]]:
        monkeypatch.setattr(held, "INLINE_HELD", inline)
        monkeypatch.setattr(held, "SPILL_BUCKET_MS", 20)
        observed, schedule = StagedState({}), held.HeldSchedule()
        for ts, ident in arrivals:
            held.hold(observed, event(ts, ident=ident), schedule)
        key = held.held_key("tf:aws_s3_bucket.logs")
        out = []
        for clock in (25, 55, 100):
            out += [(e.ts_ms, e.id) for e in held.release(observed, key, clock, schedule)]
        spilled = any(k.startswith(key + "|") for k in observed.pending)
        return out, spilled

    whole, spilled = released(100)
    assert not spilled
    split, spilled = released(2)
    assert spilled and split == whole
    assert [ts for ts, _ in whole] == sorted(ts for ts, _ in arrivals)
