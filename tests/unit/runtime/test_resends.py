"""Records read or sent again after a crash are recognised by the runtime (app/runtime/resends.py),
so the stages never see an offset."""

from __future__ import annotations

from app.model.events import Event, event_id
from app.pipeline import Pipeline
from app.runtime import step_journal
from app.runtime.resends import ResendGuard
from app.settings import Settings

SETTINGS = Settings.from_env({})


def metric(ts_ms: int, raw_offset: int | None = None) -> Event:
    event = Event(
        id=event_id("test", ts_ms),
        source="metrics",
        type="metric",
        ts_ms=ts_ms,
        entity="service:payments",
        severity="info",
        attributes={"name": "latency", "series": "latency", "value": 1.0},
    )
    if raw_offset is not None:
        event.origin = {"t": "telemetry.metrics", "p": 1, "o": raw_offset, "i": 0}
    return event


def feed(pipeline: Pipeline, guard: ResendGuard, records: list[tuple[int, Event]]) -> int:
    """Apply what the guard admits, as the process agent does; returns how many were applied."""
    applied = 0
    for offset, event in records:
        if guard.admit(0, offset, event.origin):
            pipeline.process(event, 0).commit()
            applied += 1
    return applied


def test_records_read_again_up_to_the_journaled_offset_are_skipped():
    events = [metric(t * 10_000) for t in range(30)]
    pipeline, guard = Pipeline(SETTINGS), ResendGuard()
    assert feed(pipeline, guard, list(enumerate(events[:15]))) == 15
    # Crash after the step of offsets 10..14 was journaled and applied; the committed offset
    # was 10: the restarted worker restores the guard from the journal record and reads 10..
    record = step_journal.record(14, {}, [], guard.origins(0))
    restarted = ResendGuard()
    restarted.restore(0, record)
    assert feed(pipeline, restarted, list(enumerate(events))[10:]) == 15
    assert pipeline.state.entities["service:payments"]["events"] == 30


def test_an_event_ingest_sent_again_at_a_new_offset_is_a_copy():
    events = [metric(t * 10_000, raw_offset=100 + t) for t in range(20)]
    pipeline, guard = Pipeline(SETTINGS), ResendGuard()
    resent = events[12:16]  # ingest crashed before committing raw offsets 112..115
    arrivals = list(enumerate([*events, *resent, metric(400_000, raw_offset=120)]))
    assert feed(pipeline, guard, arrivals) == 21
    assert guard.copies == 4
    assert pipeline.state.entities["service:payments"]["events"] == 21


def test_raw_positions_survive_in_the_journal_record():
    guard = ResendGuard()
    assert guard.admit(0, 0, metric(1, raw_offset=7).origin)
    record = step_journal.decode(
        step_journal.encode(step_journal.record(0, {}, [], guard.origins(0)))
    )
    restarted = ResendGuard()
    restarted.restore(0, record)
    assert not restarted.admit(0, 5, metric(1, raw_offset=7).origin)  # sent again
    assert restarted.admit(0, 6, metric(2, raw_offset=8).origin)
    assert restarted.copies == 1


def test_partitions_are_independent_and_forgotten_on_revocation():
    guard = ResendGuard()
    assert guard.admit(0, 5) and guard.admit(1, 2)
    assert not guard.admit(0, 5) and guard.admit(1, 3)
    guard.forget()
    assert guard.admit(0, 5)  # not restored: nothing known, nothing skipped
