"""Per-entity activity summary: what the web view shows as live table state.

Pure logic: `update_entity_stats` takes the stored summary (or None) and one event and returns
the new summary. The Faust table holding it is declared in tables/definitions.py.
"""

from __future__ import annotations

from typing import Any

from app.model.events import SEVERITY_RANK, Event, format_time


def update_entity_stats(stats: dict[str, Any] | None, event: Event) -> dict[str, Any]:
    """Fold one event into an entity's summary (counts by type, source and severity, times)."""
    if stats is None:
        stats = {
            "entity": event.entity,
            "events": 0,
            "by_type": {},
            "by_source": {},
            "by_severity": {},
            "first_ts_ms": event.ts_ms,
            "last_ts_ms": event.ts_ms,
            "max_severity": event.severity,
        }
    else:
        stats = {
            **stats,
            "by_type": dict(stats["by_type"]),
            "by_source": dict(stats["by_source"]),
            "by_severity": dict(stats["by_severity"]),
        }
    stats["events"] += 1
    stats["by_type"][event.type] = stats["by_type"].get(event.type, 0) + 1
    stats["by_source"][event.source] = stats["by_source"].get(event.source, 0) + 1
    stats["by_severity"][event.severity] = stats["by_severity"].get(event.severity, 0) + 1
    stats["first_ts_ms"] = min(stats["first_ts_ms"], event.ts_ms)
    if event.ts_ms >= stats["last_ts_ms"]:
        stats["last_ts_ms"] = event.ts_ms
        stats["last_event"] = {"type": event.type, "severity": event.severity, "id": event.id}
    if SEVERITY_RANK[event.severity] > SEVERITY_RANK.get(stats["max_severity"], 0):
        stats["max_severity"] = event.severity
    stats["last_time"] = format_time(stats["last_ts_ms"])
    return stats
