"""This worker's table scans for the pages, shared for `MAX_AGE_S` between requests.

Reading every value of a table (5,000 alerts, 10,000 entities) decodes each one and holds the
worker's event loop while it does; every open dashboard refreshes every few seconds. So each
scan is taken at most once per `MAX_AGE_S` and shared by every request and user: a page shows
state at most that old, and a worker spends its time on the pipeline, not on repeated scans.
Projections keep only what the pages use.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Any

from tables.definitions import alert_state, entity_stats, risk_state

#: How long one scan is shared (seconds).
MAX_AGE_S = 2.0
#: Most recently active entities the overview lists.
RECENT_ENTITIES = 100

_taken: dict[str, tuple[float, Any]] = {}


def shared(name: str, scan: Callable[[], Any], max_age_s: float = MAX_AGE_S) -> Any:
    """`scan()`'s result, taken again only when the last one is older than `max_age_s`."""
    now = time.monotonic()
    taken = _taken.get(name)
    if taken is not None and now - taken[0] < max_age_s:
        return taken[1]
    value = scan()
    _taken[name] = (time.monotonic(), value)
    return value


def forget() -> None:
    """Drop every shared scan (tests; a rebalance makes them stale anyway within seconds)."""
    _taken.clear()


def alerts() -> list[dict[str, Any]]:
    """Alert instances of this worker's partitions (scope records and bookkeeping left out)."""
    return shared("alerts", _scan_alerts)


def _scan_alerts() -> list[dict[str, Any]]:
    return [
        value
        for _, value in alert_state.items()
        if isinstance(value, dict) and value.get("t") == "alert" and value.get("status")
    ]


def entities() -> dict[str, Any]:
    """`{"count", "events", "recent": [the most recently active entities' stats]}`."""
    return shared("entities", _scan_entities)


def _scan_entities() -> dict[str, Any]:
    count = events = 0
    values = []
    for key, value in entity_stats.items():
        if not isinstance(key, str) or key.startswith("~") or not isinstance(value, dict):
            continue
        count += 1
        events += value.get("events") or 0
        values.append(value)
    recent = heapq.nlargest(RECENT_ENTITIES, values, key=lambda v: v.get("last_ts_ms") or 0)
    return {"count": count, "events": events, "recent": recent}


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
