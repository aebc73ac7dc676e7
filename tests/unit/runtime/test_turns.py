"""A batch gives the event loop a turn once per slice of work (app/runtime/turns.py)."""

from __future__ import annotations

import asyncio
import time

from app.runtime.turns import LoopTurns


async def _work_ms(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


async def test_other_tasks_run_between_slices_of_a_long_batch() -> None:
    ran: list[int] = []

    async def other() -> None:
        ran.append(len(ran))

    turns = LoopTurns(0.002)
    turns.start()
    task = asyncio.ensure_future(other())
    for _ in range(5):
        await _work_ms(1)
        await turns.take()
    assert task.done(), "the other task did not run during 5 ms of batch work"
    assert turns.given >= 1


async def test_no_turn_is_given_before_a_slice_of_work_or_when_off() -> None:
    turns = LoopTurns(10.0)
    turns.start()
    await turns.take()
    assert turns.given == 0
    off = LoopTurns(0.0)
    await _work_ms(2)
    await off.take()
    assert off.given == 0
