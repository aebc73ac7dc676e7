"""Coroutines run outside a task, up to where they must wait.

`start_eagerly` steps a coroutine (or any awaitable's iterator, such as an async generator's
`__anext__()`) in the caller's own frame. If it finishes there, no task was made and the event
loop got no turn; if it must wait, the caller gets a coroutine that continues it from there.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any


class _Resumed:
    """The rest of a coroutine that was started outside a task and suspended on `pending`."""

    def __init__(self, coro: Any, pending: Any) -> None:
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


async def _rest(coro: Any, pending: Any) -> Any:
    return await _Resumed(coro, pending)


def start_eagerly(coro: Any, *, past_bare_yields: bool = False) -> tuple[bool, Any]:
    """Run `coro` up to its first suspension: (True, its result) if it finished, else
    (False, a coroutine that continues it from there). With `past_bare_yields`, a bare yield
    (`asyncio.sleep(0)`, which only offers the loop a turn) is stepped past, not stopped at."""
    try:
        pending = coro.send(None)
        while past_bare_yields and pending is None:
            pending = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, _rest(coro, pending)
