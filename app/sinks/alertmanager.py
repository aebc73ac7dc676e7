"""Vigil alert records as Prometheus Alertmanager API v2 alerts (`POST /api/v2/alerts`).

Identity: Alertmanager identifies an alert by all its labels, so the labels sent are exactly
what identifies the alert in Vigil (its labels plus `entity` and `source`, which Vigil's
fingerprint and silence matchers also see) plus two that never change for one fingerprint:
`severity` (what Alertmanager routes are usually written against; a sender's own `severity`
label wins) and `vigil_kind`. The score and its factors change with every notification
(recency decays), so they are annotations: as labels they would split one alert into many.

Timing: `startsAt` is when the alert started (event time). A firing alert gets
`endsAt = delivery time + firing TTL` (as Prometheus does with its resend interval): Vigil only
re-notifies every repeat interval, and without `endsAt` Alertmanager would resolve it after its
`resolve_timeout` (5 min). A resolved alert gets `endsAt` = when Vigil resolved it (`ends_at`,
else `last_seen`, else the notification time), which Alertmanager reports as resolved.

Alertmanager rejects a batch holding an invalid alert (legacy label names
`[a-zA-Z_][a-zA-Z0-9_]*`, UTF-8 values, at least one label, `endsAt` not before `startsAt`),
so names are sanitized, empty values dropped and `endsAt` clamped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from app.model.events import format_time, parse_time
from app.sinks.text import alertname, explanation, factors_summary, vigil_link

API_PATH = "/api/v2/alerts"
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")
#: Record fields copied into annotations, as `vigil_<field>`.
RECORD_ANNOTATIONS: tuple[str, ...] = (
    "id",
    "fingerprint",
    "dedup_key",
    "group_key",
    "kind",
    "notification",
    "count",
    "first_seen",
    "last_seen",
    "resolved_by",
)
#: Annotation values longer than this are cut (Alertmanager keeps them in memory per alert).
MAX_ANNOTATION_CHARS = 4096


def alerts_endpoint(base_url: str) -> str:
    """`<base>/api/v2/alerts`, or the URL itself when it already points there."""
    url = base_url.rstrip("/")
    return url if urlsplit(url).path.endswith(API_PATH) else url + API_PATH


def label_name(name: str) -> str:
    """A valid Alertmanager label name: invalid characters become `_`, no leading digit."""
    clean = _INVALID_NAME_CHARS.sub("_", str(name)) or "_"
    return f"_{clean}" if clean[0].isdigit() else clean


def label_value(value: Any) -> str:
    """A label or annotation value as a string (JSON for lists and objects)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def alert_labels(record: Mapping[str, Any]) -> dict[str, str]:
    """The labels sent for one record (see the module docstring)."""
    labels: dict[str, str] = {}
    for name, value in sorted((record.get("labels") or {}).items()):
        text = label_value(value)
        if text:
            labels.setdefault(label_name(name), text)
    for name, field in (
        ("entity", "entity"),
        ("source", "source"),
        ("severity", "severity"),
        ("vigil_kind", "kind"),
    ):
        text = label_value(record.get(field))
        if text and name not in labels:
            labels[name] = text
    labels.setdefault("alertname", alertname(record))
    return labels


def alert_annotations(record: Mapping[str, Any]) -> dict[str, str]:
    """The record's annotations plus the score, its explanation and Vigil's bookkeeping."""
    annotations: dict[str, str] = {}
    for name, value in sorted((record.get("annotations") or {}).items()):
        text = label_value(value)
        if text:
            annotations[label_name(name)] = text[:MAX_ANNOTATION_CHARS]
    if "summary" not in annotations:
        annotations["summary"] = f"{alertname(record)} on {record.get('entity') or 'unknown'}"
    if record.get("score") is not None:
        annotations["vigil_score"] = label_value(record["score"])
    annotations["vigil_explanation"] = explanation(record)
    if record.get("factors"):
        annotations["vigil_factors"] = factors_summary(record["factors"])
    for field in RECORD_ANNOTATIONS:
        text = label_value(record.get(field))
        if text:
            annotations[f"vigil_{field}"] = text[:MAX_ANNOTATION_CHARS]
    return annotations


def _ms(value: Any) -> int | None:
    try:
        return parse_time(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def alertmanager_alert(
    record: Mapping[str, Any], *, public_url: str, now_ms: int, firing_ttl_ms: int
) -> dict[str, Any]:
    """One Alertmanager API v2 alert (`postableAlert`) for one Vigil alert record."""
    time_ms = _ms(record.get("time"))
    starts = _ms(record.get("starts_at")) or _ms(record.get("first_seen")) or time_ms or now_ms
    if record.get("status") == "resolved":
        ends = _ms(record.get("ends_at")) or _ms(record.get("last_seen")) or time_ms or now_ms
    else:
        ends = now_ms + firing_ttl_ms
    ends = max(ends, starts)
    return {
        "labels": alert_labels(record),
        "annotations": alert_annotations(record),
        "startsAt": format_time(starts),
        "endsAt": format_time(ends),
        "generatorURL": vigil_link(public_url, record),
    }


def alertmanager_payload(
    records: Iterable[Mapping[str, Any]], *, public_url: str, now_ms: int, firing_ttl_ms: int
) -> list[dict[str, Any]]:
    """The body of `POST /api/v2/alerts` for a batch of records."""
    return [
        alertmanager_alert(r, public_url=public_url, now_ms=now_ms, firing_ttl_ms=firing_ttl_ms)
        for r in records
    ]
