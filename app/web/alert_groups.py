"""Alerts as Alertmanager's UI shows them: filtered by matchers, grouped by group key, each
alert with the labels that tell it apart from the rest of its group. Faust-free.

Filter syntax is Alertmanager's (`{severity="critical", alertname=~"Vuln.*"}`, braces
optional), matched by tables/alerts/silences.py's matchers against an alert's labels plus `entity`,
`source`, and, when the labels lack them, `severity`, `kind` and `status`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from app.web.live_views import ALERT_ANNOTATIONS
from tables.alerts.silences import (
    Matcher,
    matches_all,
    parse_matcher,
    silence_matches,
    silence_state,
)

#: Severity order, lowest first (app/model/events.py's scale).
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
#: Annotations that tell alerts of one group apart (shown beside the labels): a finding's
#: versions, a Falco alert's container, process and file.
DISTINGUISHING_ANNOTATIONS = tuple(a for a in ALERT_ANNOTATIONS if a not in ("summary", "title"))
#: Labels every alert of a group shares by construction; never distinguishing.
_COMMON = frozenset({"entity", "source"})
#: Most alerts of one group returned (the group keeps its full count).
MAX_ALERTS_PER_GROUP = 50
#: What a silence made from the page may hold (tables/alerts/silences.py bounds).
MAX_SILENCE_MATCHERS = 32
MAX_MATCHER_VALUE = 1024
STATES = ("firing", "active", "silenced", "resolved", "all")


def parse_filter(text: str | None) -> tuple[Matcher, ...]:
    """Matchers from Alertmanager's filter syntax; ValueError on a bad one."""
    text = (text or "").strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    specs = [p.strip() for p in parts if p.strip()]
    if len(specs) > MAX_SILENCE_MATCHERS:
        raise ValueError(f"filter: at most {MAX_SILENCE_MATCHERS} matchers")
    return tuple(parse_matcher(spec, f"filter[{i}]") for i, spec in enumerate(specs))


def filter_labels(alert: Mapping[str, Any]) -> dict[str, str]:
    """What a filter matches: labels, entity, source, then severity/kind/status if absent."""
    labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
    out = {"entity": str(alert.get("entity", "")), "source": str(alert.get("source", ""))}
    out.update(labels)
    for name in ("severity", "kind", "status"):
        if name not in out and alert.get(name) is not None:
            out[name] = str(alert[name])
    return out


def silenced(alert: Mapping[str, Any], silences: Iterable[Mapping[str, Any]], now_ms: int) -> bool:
    """Muted by a silence: as the alert stage recorded it, or by one of `silences` active at
    `now_ms`."""
    if alert.get("silenced_by"):
        return True
    if not silences:
        return False
    labels = {"entity": alert.get("entity", ""), "source": alert.get("source", "")}
    labels.update(alert.get("labels") or {})
    return any(
        silence_state(s, now_ms) == "active" and silence_matches(s, labels) for s in silences
    )


def alert_row(alert: Mapping[str, Any], muted: bool) -> dict[str, Any]:
    """The fields the page shows for one alert instance."""
    annotations = alert.get("annotations") or {}
    return {
        "fingerprint": alert.get("fp"),
        "group": alert.get("group") or f"{alert.get('entity')}:{{}}",
        "entity": alert.get("entity"),
        "source": alert.get("source"),
        "kind": alert.get("kind"),
        "status": alert.get("status"),
        "silenced": muted,
        "severity": alert.get("severity") or "info",
        "labels": dict(alert.get("labels") or {}),
        "extra": {k: annotations[k] for k in DISTINGUISHING_ANNOTATIONS if annotations.get(k)},
        "summary": annotations.get("summary") or annotations.get("title"),
        "count": alert.get("count"),
        "score": alert.get("score"),
        "last_seen": alert.get("last_seen"),
        "first_seen": alert.get("first_seen"),
    }


def select_alerts(
    values: Iterable[Any],
    matchers: tuple[Matcher, ...],
    state: str,
    silences: list[Mapping[str, Any]],
    now_ms: int | None = None,
) -> list[tuple[Mapping[str, Any], bool]]:
    """`(alert, silenced)` for the alert table values that pass the filter and the state."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    active = [s for s in silences if silence_state(s, now_ms) == "active"]
    selected = []
    for alert in values:
        if not isinstance(alert, dict) or alert.get("t") != "alert" or not alert.get("status"):
            continue
        if matchers and not matches_all(matchers, filter_labels(alert)):
            continue
        muted = silenced(alert, active, now_ms)
        firing = alert["status"] == "firing"
        if state == "firing":
            keep = firing
        elif state == "active":
            keep = firing and not muted
        elif state == "silenced":
            keep = firing and muted
        else:
            keep = state == "all" or not firing
        if keep:
            selected.append((alert, muted))
    return selected


def group_order(group: Mapping[str, Any]) -> tuple[Any, ...]:
    """Firing and not silenced first, then worst severity, latest sighting, key."""
    return (
        group["firing"] == 0 or group["silenced"],
        -SEVERITY_RANK.get(group["severity"], 0),
        -group["last_seen"],
        group["group"],
    )


Members = dict[str, list[tuple[Mapping[str, Any], bool]]]


def group_summaries(
    selected: Iterable[tuple[Mapping[str, Any], bool]],
) -> tuple[list[dict[str, Any]], Members]:
    """Every group of `selected` summed up (no alerts), in page order, and each group's
    members by group key."""
    members: Members = {}
    for alert, muted in selected:
        key = alert.get("group") or f"{alert.get('entity')}:{{}}"
        members.setdefault(key, []).append((alert, muted))
    summaries = []
    for key, alerts in members.items():
        if len(alerts) == 1:  # most groups: one alert
            alert, muted = alerts[0]
            firing = alert["status"] == "firing"
            summaries.append(
                {
                    "group": key,
                    "entity": alert.get("entity"),
                    "severity": alert.get("severity") or "info",
                    "firing": int(firing),
                    "silenced": firing and muted,
                    "count": 1,
                    "last_seen": alert.get("last_seen") or 0,
                }
            )
            continue
        firing = [muted for alert, muted in alerts if alert["status"] == "firing"]
        summaries.append(
            {
                "group": key,
                "entity": alerts[0][0].get("entity"),
                "severity": max(
                    (a.get("severity") or "info" for a, _ in alerts),
                    key=lambda s: SEVERITY_RANK.get(s, 0),
                ),
                "firing": len(firing),
                "silenced": bool(firing) and all(firing),
                "count": len(alerts),
                "last_seen": max((a.get("last_seen") or 0) for a, _ in alerts),
            }
        )
    summaries.sort(key=group_order)
    return summaries, members


def detailed(summary: dict[str, Any], members: Members) -> dict[str, Any]:
    """One group in full: its shared labels and its alerts, each alert with what tells it
    apart from the rest of its group (`distinct`)."""
    return _detailed(summary, members[summary["group"]])


def page_groups(
    selected: Iterable[tuple[Mapping[str, Any], bool]], detail: int | None = None
) -> tuple[int, list[dict[str, Any]]]:
    """The number of groups and the first `detail` of them (all when None) in full, in page
    order. Only the groups returned are built in full."""
    summaries, members = group_summaries(selected)
    shown = summaries if detail is None else summaries[:detail]
    return len(summaries), [detailed(group, members) for group in shown]


def _detailed(
    group: dict[str, Any], alerts: list[tuple[Mapping[str, Any], bool]]
) -> dict[str, Any]:
    rows = [alert_row(alert, muted) for alert, muted in alerts]
    common = dict(rows[0]["labels"])
    for row in rows[1:]:
        common = {k: v for k, v in common.items() if row["labels"].get(k) == v}
    if len(rows) == 1:  # one alert: its group key's labels are the shared ones
        common = {k: v for k, v in common.items() if f"{k}=" in group["group"] or k in _COMMON}
    rows.sort(key=lambda a: (-SEVERITY_RANK.get(a["severity"], 0), -(a["last_seen"] or 0)))
    for row in rows[:MAX_ALERTS_PER_GROUP]:
        distinct = {k: v for k, v in row["labels"].items() if k not in common and k not in _COMMON}
        row["distinct"] = {**distinct, **row["extra"]}
    return {**group, "labels": common, "alerts": rows[:MAX_ALERTS_PER_GROUP]}


def group_rows(selected: Iterable[tuple[Mapping[str, Any], bool]]) -> list[dict[str, Any]]:
    """Every group of `selected` in page order (see `page_groups`)."""
    return page_groups(selected)[1]


def silence_matchers(labels: Mapping[str, str]) -> list[str]:
    """`name="value"` matchers for a label set, within a silence's bounds (sorted names)."""
    out = []
    for name in sorted(labels)[:MAX_SILENCE_MATCHERS]:
        value = str(labels[name])[:MAX_MATCHER_VALUE]
        out.append(str(Matcher(name, "=", value)))
    return out
