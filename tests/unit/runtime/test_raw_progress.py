"""What clock ticks report of the ingest agent's raw partitions (app/runtime/raw_progress.py)."""

from __future__ import annotations

from app.runtime.raw_progress import RawProgress

FALCO = ("telemetry.falco", 0)
EMPTY = ("telemetry.falco", 1)
UNREAD = ("telemetry.metrics", 0)
CAUGHT_UP = ("telemetry.metrics", 1)


def report(progress, highwaters, committed=None):
    committed = committed or {}
    return progress.report(highwaters, highwaters.get, committed.get)


def test_waiting_until_the_agent_handled_the_record_before_the_highwater():
    progress = RawProgress()
    progress.observe(*FALCO, offset=4, event_ms=1_000)
    progress.observe(*FALCO, offset=5, event_ms=None)  # a dead letter: no event time
    assert report(progress, {FALCO: 10}) == {"telemetry.falco": {"0": [1_000, True]}}
    progress.observe(*FALCO, offset=9, event_ms=2_000)
    assert report(progress, {FALCO: 10}) == {"telemetry.falco": {"0": [2_000, False]}}


def test_partitions_not_read_since_the_assignment_start_from_the_committed_offset():
    progress = RawProgress()
    got = report(
        progress,
        {EMPTY: 0, UNREAD: 7, CAUGHT_UP: 3, FALCO: None},
        committed={UNREAD: 2, CAUGHT_UP: 3},
    )
    assert got == {
        "telemetry.falco": {"1": [None, False], "0": [None, True]},  # highwater not known yet
        "telemetry.metrics": {"0": [None, True], "1": [None, False]},
    }


def test_the_watermark_never_goes_back_and_forget_starts_over():
    progress = RawProgress()
    progress.observe(*FALCO, offset=0, event_ms=5_000)
    progress.observe(*FALCO, offset=1, event_ms=4_000)
    assert report(progress, {FALCO: 2})["telemetry.falco"]["0"] == [5_000, False]
    progress.forget()
    assert report(progress, {FALCO: 2}, committed={FALCO: 1}) == {
        "telemetry.falco": {"0": [None, True]}
    }


def test_backlog_counts_the_records_left_to_read():
    progress = RawProgress()
    progress.observe(*FALCO, offset=4, event_ms=1_000)
    highwaters = {FALCO: 10, UNREAD: 7, CAUGHT_UP: 3, EMPTY: None}
    committed = {UNREAD: 2, CAUGHT_UP: 3}
    # 10 - 5 on FALCO, 7 - 2 on UNREAD (from its committed offset), none where not known
    assert progress.backlog(highwaters, highwaters.get, committed.get) == 10
    progress.observe(*FALCO, offset=9, event_ms=2_000)
    assert progress.backlog(highwaters, highwaters.get, committed.get) == 5
