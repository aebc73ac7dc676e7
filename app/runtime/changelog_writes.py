"""The changelog records an agent's table writes sent, to learn when Kafka has them.

Faust sends a table write's changelog record in the background (`send_soon`) and forgets its
future. Every Vigil table's `send_changelog` is wrapped (tables/definitions.py) so the future
goes to the list of the agent task that wrote, when that task asked for tracking (`start`);
records an agent writes to the changelog itself are added to it (`add`); the agent takes them
(`take`) to know which of its steps' writes are in Kafka
(app/runtime/step_journal.py). The list is per task (a context variable), so two agents never take
each other's records.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

_pending: contextvars.ContextVar[list[asyncio.Future] | None] = contextvars.ContextVar(
    "vigil_changelog_pending", default=None
)


def track(send: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a table's `send_changelog` so its records are remembered by the writing task."""

    def send_changelog(*args: Any, **kwargs: Any) -> Any:
        future = send(*args, **kwargs)
        pending = _pending.get()
        if pending is not None:
            pending.append(future)
        return future

    return send_changelog


def start() -> None:
    """Track the changelog records of the current task's writes from now on."""
    _pending.set([])


def add(futures: list[asyncio.Future]) -> None:
    """Track records the current task sent itself (app/runtime/direct_writes.py)."""
    pending = _pending.get()
    if pending is not None:
        pending.extend(futures)


def take() -> list[asyncio.Future]:
    """The current task's records sent since the last `take` (empty when not tracking)."""
    pending = _pending.get()
    if not pending:
        return []
    taken = list(pending)
    pending.clear()
    return taken


def all_confirmed(futures: list[asyncio.Future]) -> bool:
    """Whether Kafka acknowledged every record of `futures` (a failed send raises here)."""
    for future in futures:
        if not future.done():
            return False
        future.result()
    return True
