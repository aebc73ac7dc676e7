"""What the pages read of this worker's tables, computed off the request path and shared.

Alerts and entities come from indexes that follow the process agent's writes
(app/web/live_views.py, agents/history.py), not from a scan per request: reading every value of
5,000 alerts and 10,000 entities takes hundreds of milliseconds on the worker's event loop.
An index is built by a chunked scan (it yields to the loop every 200 values, so requests and
agents go on meanwhile), and rebuilt that way in the background every 5 minutes while the
index in hand serves.

A page's answer for one query is computed once and shared by every request and user (every
open dashboard refreshes every few seconds). Once it is `MAX_AGE_S` old, the next request
gets it still and starts its recomputation in the background; only the first request for a
query waits for its computation. A request thus does O(page) work: it never pays for a scan
or a regrouping, and a page shows state a few seconds old. Risk subjects, drift and posture
are read by chunked scans of their tables.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from agents.history import ALERTS, ENTITIES
from app.faust_app import app
from app.web.live_views import LiveIndex, chunked, entity_summary
from tables.definitions import alert_state, entity_stats, observed_state, posture_state, risk_state

log = logging.getLogger(__name__)
T = TypeVar("T")

#: After this many seconds an answer is recomputed (in the background) on its next request.
MAX_AGE_S = 2.0
#: Most recently active entities the overview lists.
RECENT_ENTITIES = 100
#: Most answers kept at once (one per query: filter, state, page).
MAX_SHARED = 64
#: A computation slower than this is logged at INFO (else DEBUG).
SLOW_S = 0.1

_taken: OrderedDict[str, tuple[float, Any]] = OrderedDict()
_running: dict[str, asyncio.Future[Any]] = {}


async def shared(name: str, compute: Callable[[], Awaitable[T]], max_age_s: float = MAX_AGE_S) -> T:
    """`compute()`'s last result for `name`. The first request waits for it; once it is older
    than `max_age_s`, a request starts its recomputation in the background and gets the one
    in hand."""
    taken = _taken.get(name)
    if taken is None:
        # Shielded: a request that goes away does not cancel what others wait for.
        return await asyncio.shield(_start(name, compute))
    if time.monotonic() - taken[0] >= max_age_s:
        _start(name, compute)
    return taken[1]


def _start(
    name: str, compute: Callable[[], Awaitable[Any]], keep: bool = True
) -> asyncio.Future[Any]:
    """The computation of `name` under way, or a new one (its result shared if `keep`)."""
    running = _running.get(name)
    if running is not None:
        return running
    task = asyncio.ensure_future(_compute(name, compute, keep))
    _running[name] = task
    task.add_done_callback(lambda done: _finished(name, done))
    return task


async def _compute(name: str, compute: Callable[[], Awaitable[Any]], keep: bool) -> Any:
    started = time.monotonic()
    value = await compute()
    took = time.monotonic() - started
    log.log(
        logging.INFO if took > SLOW_S else logging.DEBUG, "web: %s in %.0f ms", name, took * 1e3
    )
    if not keep:
        return value
    _taken[name] = (time.monotonic(), value)
    _taken.move_to_end(name)
    while len(_taken) > MAX_SHARED:
        _taken.popitem(last=False)
    return value


def _finished(name: str, done: asyncio.Future[Any]) -> None:
    if _running.get(name) is done:
        del _running[name]
    if not done.cancelled() and done.exception() is not None:
        log.warning("web: computing %s failed: %r", name, done.exception())


def forget() -> None:
    """Drop every shared answer, computation under way and index (partitions moved; tests)."""
    for running in list(_running.values()):
        running.cancel()
    _running.clear()
    _taken.clear()
    ALERTS.invalidate()
    ENTITIES.invalidate()


@app.on_partitions_revoked.connect
async def _partitions_moved(sender: Any, revoked: Any, **kwargs: Any) -> None:
    """Answers computed from the old assignment are dropped."""
    forget()


async def _followed(name: str, index: LiveIndex, table: Any) -> LiveIndex:
    """The index; built first when empty, rebuilt in the background when stale."""

    def rebuild() -> Awaitable[bool]:
        return index.rebuild_chunked(table.items())

    if index.built_at is None:
        await asyncio.shield(_start(f"index|{name}", rebuild, keep=False))
    elif index.stale:
        _start(f"index|{name}", rebuild, keep=False)
    return index


async def alerts() -> list[dict[str, Any]]:
    """Alert instances of this worker's partitions (projections: app/web/live_views.py)."""
    return (await _followed("alerts", ALERTS, alert_state)).values()


async def entities() -> dict[str, Any]:
    """`{"count", "events", "recent": [the most recently active entities]}`."""
    index = await _followed("entities", ENTITIES, entity_stats)

    async def summary() -> dict[str, Any]:
        return entity_summary(index, RECENT_ENTITIES)

    return await shared("entities", summary)


async def risk_subjects() -> list[dict[str, Any]]:
    """Risk subjects of this worker's partitions: subject, type, score, time, contributions."""
    return await shared("risk", _scan_risk)


async def drifted() -> list[tuple[str, dict[str, Any]]]:
    """`(resource, drifted paths)` of this worker's partitions' drift state."""

    async def scan() -> list[tuple[str, dict[str, Any]]]:
        rows = []
        async for key, value in chunked(observed_state.items()):
            if not isinstance(key, str) or not isinstance(value, dict):
                continue
            if value.get("t") == "drift" and value.get("drifted"):
                rows.append((key, value["drifted"]))
        return rows

    return await shared("drift", scan)


async def posture_rows() -> list[dict[str, Any]]:
    """This worker's posture table rows, `{"key", "value"}` (tables/compliance/posture.py sums
    them)."""

    async def scan() -> list[dict[str, Any]]:
        return [
            {"key": key, "value": value}
            async for key, value in chunked(posture_state.items())
            if isinstance(key, str) and _visible(key) and value is not None
        ]

    return await shared("posture", scan)


def _visible(key: str) -> bool:
    """Not bookkeeping (as the table listing, app/web/views.py)."""
    return not key.startswith("~") and not key.endswith("#det") and "|~" not in key


async def _scan_risk() -> list[dict[str, Any]]:
    subjects = []
    async for key, value in chunked(risk_state.items()):
        if not isinstance(key, str) or not isinstance(value, dict) or value.get("t") != "risk":
            continue
        emit = value.get("emit") or {}
        subjects.append(
            {
                "subject": key,
                "type": value.get("type"),
                "score": emit.get("score"),
                "time": emit.get("time"),
                "contributions": emit.get("contributions") or [],
            }
        )
    return subjects
