"""Fetched messages handed to their streams without four asyncio tasks each.

Faust's fetcher loop (`Consumer._drain_messages`) delivers every fetched message with
`wait_first(callback(message), suspend_flow.wait())`, so that a delivery blocked on a full
stream buffer gives way when a rebalance suspends the flow. `wait_first` wraps the delivery and
three events (suspend, stopped, crashed) in a task each and waits on all four: ~10 % of a
worker's CPU, for deliveries that almost never block (the buffer has room).

`install` makes the consumer run the delivery eagerly, up to its first suspension, in the
fetcher's own task. A delivery that completes there (the common case) never becomes a task;
one that blocks is handed, as it stands, to Faust's `wait_first`, which then behaves as before.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

from faust.transport.consumer import Consumer
from mode.services import Service, WaitResults

_faust_wait_first = Service.wait_first


class _Resumed:
    """The rest of a coroutine that was started outside a task and suspended on `pending`."""

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self._coro, self._pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation included: passed on to the coroutine
                try:
                    pending = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _rest(coro: Coroutine[Any, Any, Any], pending: Any) -> Any:
    return await _Resumed(coro, pending)


def start_eagerly(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run `coro` up to its first suspension: (True, its result) if it finished, else
    (False, a coroutine that continues it from there)."""
    try:
        pending = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, _rest(coro, pending)


async def _eager_wait_first(self: Any, *coros: Any, timeout: Any = None) -> WaitResults:
    first = coros[0]
    if (
        isinstance(first, Coroutine)
        and not self.suspend_flow.is_set()
        and not self._stopped.is_set()
        and not self._crashed.is_set()
    ):
        finished, result = start_eagerly(first)
        if finished:
            for other in coros[1:]:
                if isinstance(other, Coroutine):
                    other.close()  # never started: closed, not left to warn unawaited
            return WaitResults([first], [result], False)
        coros = (result, *coros[1:])
    return await _faust_wait_first(self, *coros, timeout=timeout)


def install(enabled: bool) -> None:
    """Deliver fetched messages eagerly (`enabled`) or as Faust does (idempotent)."""
    Consumer.wait_first = _eager_wait_first if enabled else _faust_wait_first  # type: ignore[method-assign]
