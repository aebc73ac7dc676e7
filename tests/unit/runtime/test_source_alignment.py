"""Raw partitions kept within a bound of each other in event time
(app/runtime/source_alignment.py)."""

from __future__ import annotations

from typing import Any

from app.runtime.source_alignment import SourceAlignment

MIN = 60_000


def aligner() -> SourceAlignment:
    return SourceAlignment(max_drift_ms=MIN, idle_s=30.0, max_pause_s=60.0)


def test_a_partition_too_far_ahead_pauses_until_the_slowest_catches_up():
    a = aligner()
    a.observe("metrics", 10 * MIN, now=0.0)
    a.observe("logs", 0, now=0.0)
    assert a.decide(1.0) == (["metrics"], [])
    a.observe("logs", 5 * MIN, now=2.0)
    assert a.decide(2.0) == ([], [])  # still more than a minute behind
    a.observe("logs", 9 * MIN + 1, now=3.0)
    assert a.decide(3.0) == ([], ["metrics"])
    assert a.paused() == []


def test_within_the_drift_nothing_pauses():
    a = aligner()
    a.observe("metrics", MIN, now=0.0)
    a.observe("logs", 0, now=0.0)
    assert a.decide(0.5) == ([], [])


def test_a_slowest_source_that_went_quiet_holds_nobody():
    a = aligner()
    a.observe("metrics", 10 * MIN, now=0.0)
    a.observe("logs", 0, now=0.0)
    assert a.decide(1.0) == (["metrics"], [])
    # logs sends nothing more (its backlog is read): after the idle time metrics goes on
    assert a.decide(29.0) == ([], [])
    assert a.decide(31.0) == ([], ["metrics"])


def test_a_source_ahead_for_good_is_never_paused_for_longer_than_the_limit():
    a = aligner()
    a.observe("skewed", 100 * MIN, now=0.0)
    a.observe("logs", 0, now=0.0)
    assert a.decide(0.0) == (["skewed"], [])
    for now in range(1, 60):
        a.observe("logs", now, now=float(now))  # the slow source keeps sending
        assert a.decide(float(now)) == ([], [])
    assert a.decide(60.0) == ([], ["skewed"])
    a.observe("skewed", 100 * MIN + 1, now=61.0)
    assert a.decide(61.0) == ([], [])  # it gets as long to move before the next pause
    a.observe("logs", 119, now=119.0)
    a.observe("skewed", 100 * MIN + 2, now=119.0)
    assert a.decide(119.0) == ([], [])
    assert a.decide(120.0) == (["skewed"], [])


def test_forgetting_starts_over():
    a = aligner()
    a.observe("metrics", 10 * MIN, now=0.0)
    a.observe("logs", 0, now=0.0)
    a.decide(0.0)
    a.forget()
    assert a.paused() == [] and a.decide(1.0) == ([], [])


def test_the_agent_side_pauses_resumes_and_seeks_back_faust_partitions():
    import asyncio
    from types import SimpleNamespace

    from faust.types import TP

    from app.runtime.alignment import PartitionAligner
    from app.settings import Settings

    calls: list[tuple[str, Any]] = []

    class Consumer:
        def pause_partitions(self, tps):
            assert all(type(tp) is TP for tp in tps)  # Faust asserts on its own type
            calls.append(("pause", sorted(tps)))

        def resume_partitions(self, tps):
            assert all(type(tp) is TP for tp in tps)
            calls.append(("resume", sorted(tps)))

        async def seek_wait(self, offsets):
            calls.append(("seek", dict(offsets)))

        def highwater(self, tp):
            return 1_000  # nothing read to its end here

    async def scenario() -> None:
        aligner = PartitionAligner(
            SimpleNamespace(consumer=Consumer()),
            Settings.from_env({"VIGIL_ALIGN_DRIFT_MS": "60000"}),
            "ingest",
        )
        await aligner.observe("logs", 0, 0, 0)
        await aligner.observe("metrics", 0, 7, 10 * MIN)
        assert calls == [("pause", [TP("metrics", 0)])]
        await aligner.observe("logs", 0, 1, None)  # a dead letter: no event time
        await aligner.observe("logs", 0, 2, 10 * MIN)
        # records fetched while paused may have been dropped: read again after offset 7
        assert calls[-2:] == [("seek", {TP("metrics", 0): 8}), ("resume", [TP("metrics", 0)])]
        await aligner.observe("metrics", 0, 8, 20 * MIN)
        await aligner.release()
        assert calls[-1] == ("resume", [TP("metrics", 0)])

    asyncio.run(scenario())


def test_a_slowest_source_read_to_its_end_holds_nobody_at_once():
    a = aligner()
    a.observe("metrics", 10 * MIN, now=0.0)
    a.observe("logs", 0, now=0.0)
    assert a.decide(1.0) == (["metrics"], [])
    assert a.decide(2.0, caught_up={"logs"}) == ([], ["metrics"])
