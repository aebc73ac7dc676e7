"""A partition that stops delivering while records wait is read again; one held back on
purpose, or simply idle, is not (app/runtime/stall_watch.py)."""

from __future__ import annotations

from app.runtime.stall_watch import StallWatch


def check(watch: StallWatch, now: float, positions: dict, ends: dict, held=()) -> dict:
    return watch.stalled(now, positions, ends.get, lambda tp: tp in held)


def test_a_partition_that_does_not_move_with_records_waiting_is_stalled_after_the_limit():
    watch = StallWatch(stall_s=15)
    assert check(watch, 0, {"a": 4}, {"a": 300}) == {}
    assert check(watch, 10, {"a": 4}, {"a": 300}) == {}
    assert check(watch, 15, {"a": 4}, {"a": 300}) == {"a": 4}
    # After the seek it gets the limit again before being reported again.
    assert check(watch, 20, {"a": 4}, {"a": 300}) == {}
    assert check(watch, 30, {"a": 4}, {"a": 300}) == {"a": 4}


def test_progress_idleness_and_held_back_partitions_are_not_stalls():
    watch = StallWatch(stall_s=15)
    for now, position in ((0, 4), (10, 50), (20, 90), (30, 120)):  # moving
        assert check(watch, now, {"a": position}, {"a": 300}) == {}
    for now in (40, 60, 80):  # read to its end: nothing waits
        assert check(watch, now, {"a": 300}, {"a": 300}) == {}
    for now in (100, 120, 140):  # paused, or its buffer full
        assert check(watch, now, {"a": 300}, {"a": 900}, held={"a"}) == {}
    assert check(watch, 150, {"a": 300}, {"a": 900}) == {}  # waiting starts counting now
    assert check(watch, 165, {"a": 300}, {"a": 900}) == {"a": 300}


def test_unknown_high_water_marks_and_partitions_gone_are_dropped():
    watch = StallWatch(stall_s=15)
    assert check(watch, 0, {"a": 4, "b": 7}, {}) == {}
    assert check(watch, 20, {"a": 4, "b": 7}, {}) == {}  # not fetched: nothing known to wait
    assert check(watch, 30, {"b": 7}, {"b": 9}) == {}  # waiting since 20
    assert check(watch, 35, {"b": 7}, {"b": 9}) == {"b": 7}
    assert "a" not in watch._since


async def test_a_partition_that_never_delivered_is_sought_to_the_log_start_and_put_back():
    """Nothing arrived since the assignment and nothing is committed: its position is the log
    start, its end comes from the broker (a partition never fetched has no high-water mark)."""
    import asyncio

    from faust.types import TP

    from app.runtime import stall_watch

    tp = TP("in", 1)

    class Consumer:
        flow_active = True
        app = type("App", (), {"rebalancing": False})()
        _paused_partitions: set = set()
        _buffered_partitions = {tp}  # taken out for a full buffer, which has drained since
        seeks: list = []
        dropped: list = []

        async def earliest_offsets(self, *tps):
            return dict.fromkeys(tps, 0)

        async def highwaters(self, *tps):
            return dict.fromkeys(tps, 300)

        async def seek_wait(self, partitions):
            self.seeks.append(dict(partitions))

        def on_buffer_drop(self, tp):
            self.dropped.append(tp)

    consumer, counters = Consumer(), {"stall_seeks": 0}
    task = asyncio.ensure_future(
        stall_watch.watch(
            consumer, lambda: {tp: None}, lambda: False, counters, stall_s=0.05, check_s=0.01
        )
    )
    for _ in range(200):
        if consumer.seeks:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert consumer.seeks[0] == {tp: 0} and consumer.dropped[0] == tp
    assert counters["stall_seeks"] >= 1
