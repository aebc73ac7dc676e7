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

from collections.abc import Coroutine
from typing import Any

from faust.transport.consumer import Consumer
from mode.services import Service, WaitResults

from app.runtime.eager import start_eagerly

_faust_wait_first = Service.wait_first


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
