"""Fetched messages are delivered eagerly, and a delivery that blocks behaves as Faust's
(app/runtime/eager_delivery.py)."""

from __future__ import annotations

import asyncio

import pytest
from faust.transport.consumer import Consumer
from mode.services import Service

from app.runtime import eager_delivery
from app.runtime.eager import start_eagerly


async def test_a_coroutine_that_does_not_suspend_finishes_without_a_task():
    tasks_before = len(asyncio.all_tasks())

    async def deliver():
        return "delivered"

    finished, result = start_eagerly(deliver())
    assert (finished, result) == (True, "delivered")
    assert len(asyncio.all_tasks()) == tasks_before


async def test_a_blocked_coroutine_continues_where_it_stopped():
    gate = asyncio.get_running_loop().create_future()
    steps = []

    async def deliver():
        steps.append("before")
        value = await gate
        steps.append(f"after {value}")
        await asyncio.sleep(0)
        return value * 2

    finished, rest = start_eagerly(deliver())
    assert not finished and steps == ["before"]
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result(21)
    assert await task == 42
    assert steps == ["before", "after 21"]


async def test_errors_and_cancellation_reach_the_blocked_coroutine():
    gate = asyncio.get_running_loop().create_future()
    seen = []

    async def deliver():
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    finished, rest = start_eagerly(deliver())
    assert not finished
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"] and gate.cancelled()

    async def fails():
        await asyncio.sleep(0)
        raise ValueError("bad record")

    finished, rest = start_eagerly(fails())
    assert not finished
    with pytest.raises(ValueError, match="bad record"):
        await rest


class _Flow(Service):
    """What the eager wait_first reads of Faust's consumer: its suspend, stopped and crashed
    events."""

    def __init__(self) -> None:
        super().__init__()
        self.suspend_flow = asyncio.Event()


@pytest.fixture
def eager():
    eager_delivery.install(True)
    yield Consumer.wait_first
    eager_delivery.install(False)


async def test_wait_first_returns_an_eager_delivery_and_waits_for_a_blocked_one(eager):
    flow = _Flow()
    delivered = []

    async def deliver(value):
        delivered.append(value)

    result = await eager(flow, deliver(1), flow.suspend_flow.wait())
    assert delivered == [1] and not result.stopped and len(result.done) == 1

    # A delivery that blocks (a full stream buffer) gives way when the flow is suspended,
    # as Faust's wait_first does.
    full = asyncio.get_running_loop().create_future()

    async def blocked():
        await full

    suspended = flow.suspend_flow.wait()
    waiting = asyncio.ensure_future(eager(flow, blocked(), suspended))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    flow.suspend_flow.set()
    result = await asyncio.wait_for(waiting, 5)
    assert result.done == [suspended]
    assert full.cancelled()  # the blocked delivery was abandoned, as in Faust


async def test_bare_yields_can_be_stepped_past_without_a_loop_turn():
    """`asyncio.sleep(0)` only offers the loop a turn; past it, a value ready now is taken now."""
    turns = []
    asyncio.get_running_loop().call_soon(turns.append, "loop turn")

    async def take():
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return "taken"

    assert start_eagerly(take(), past_bare_yields=True) == (True, "taken")
    assert turns == []
    finished, rest = start_eagerly(take())
    assert not finished
    assert await rest == "taken"
    assert turns == ["loop turn"]
