"""What the pages read of this worker's tables, and answers shared for `MAX_AGE_S`.

Alerts and entities come from indexes that follow the process agent's writes
(tables/live_views.py, agents/history.py), not from a scan per request: reading every value of
5,000 alerts and 10,000 entities takes hundreds of milliseconds and holds the worker's event
loop. Risk subjects (hundreds) are scanned. A page's answer for one query is computed at most
once per `MAX_AGE_S` and shared by every request and user (every open dashboard refreshes
every few seconds): a page shows state at most that old.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from agents.history import ALERTS, ENTITIES
from tables.definitions import alert_state, entity_stats, risk_state
from tables.live_views import LiveIndex, entity_summary

#: How long one scan is shared (seconds).
MAX_AGE_S = 2.0
#: Most recently active entities the overview lists.
RECENT_ENTITIES = 100

#: Most answers kept at once (one per query: filter, state, page).
MAX_SHARED = 64

_taken: OrderedDict[str, tuple[float, Any]] = OrderedDict()


def shared(name: str, scan: Callable[[], Any], max_age_s: float = MAX_AGE_S) -> Any:
    """`scan()`'s result, taken again only when the last one is older than `max_age_s`."""
    now = time.monotonic()
    taken = _taken.get(name)
    if taken is not None and now - taken[0] < max_age_s:
        return taken[1]
    value = scan()
    _taken[name] = (time.monotonic(), value)
    _taken.move_to_end(name)
    while len(_taken) > MAX_SHARED:
        _taken.popitem(last=False)
    return value


def forget() -> None:
    """Drop every shared answer and index (tests)."""
    _taken.clear()
    ALERTS.invalidate()
    ENTITIES.invalidate()


def _followed(index: LiveIndex, table: Any) -> LiveIndex:
    """The index, rebuilt from its table first when stale (tables/live_views.py)."""
    if index.stale:
        index.rebuild(table.items())
    return index


def alerts() -> list[dict[str, Any]]:
    """Alert instances of this worker's partitions (projections: tables/live_views.py)."""
    return _followed(ALERTS, alert_state).values()


def entities() -> dict[str, Any]:
    """`{"count", "events", "recent": [the most recently active entities]}`."""
    index = _followed(ENTITIES, entity_stats)
    return shared("entities", lambda: entity_summary(index, RECENT_ENTITIES))


def risk_subjects() -> list[dict[str, Any]]:
    """Risk subjects of this worker's partitions: subject, type, score, time, contributions."""
    return shared("risk", _scan_risk)


def _scan_risk() -> list[dict[str, Any]]:
    subjects = []
    for key, value in risk_state.items():
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
