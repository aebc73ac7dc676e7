"""Vigil alert records as Slack-compatible incoming-webhook messages, one per record.

The message uses the legacy `attachments` layout (colour bar, title with link, short fields)
rather than Block Kit: Slack renders it, and so do the "Slack-compatible" endpoints of
Mattermost, Rocket.Chat and Discord (`/slack`), which ignore or reject `blocks`. `text` is the
one-line fallback for notifications. The record itself travels under `vigil`, for receivers
that want the data rather than the prose.

Record text was already masked by the pipeline; here it is only escaped for Slack's markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.sinks.text import explanation, title, vigil_link

#: Attachment colour by severity; resolved alerts are green.
SEVERITY_COLOR: dict[str, str] = {
    "critical": "#8b0000",
    "high": "#d00000",
    "medium": "#ff8c00",
    "low": "#daa520",
    "info": "#439fe0",
}
RESOLVED_COLOR = "#2eb886"
MAX_TEXT_CHARS = 3000


def escape(text: Any) -> str:
    """Escape Slack's control characters (`&`, `<`, `>`)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_message(record: Mapping[str, Any], *, public_url: str) -> dict[str, Any]:
    """The JSON body posted to a Slack-compatible webhook for one alert record."""
    resolved = record.get("status") == "resolved"
    severity = str(record.get("severity") or "unknown")
    score = record.get("score")
    headline = title(record)
    text = f"{headline} (severity {severity}" + (f", score {score})" if score is not None else ")")
    annotations = record.get("annotations") or {}
    summary = annotations.get("summary") or annotations.get("description") or ""
    fields = [
        ("Entity", record.get("entity")),
        ("Severity", severity),
        ("Score", score),
        ("Count", record.get("count")),
        ("Source", record.get("source")),
        ("Kind", record.get("kind")),
        ("Started", record.get("starts_at")),
        ("Last seen", record.get("last_seen")),
    ]
    if resolved:
        fields.append(("Ended", record.get("ends_at")))
    labels = record.get("labels") or {}
    label_text = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    body = "\n".join(part for part in (escape(summary), f"_{escape(explanation(record))}_") if part)
    attachment = {
        "color": RESOLVED_COLOR if resolved else SEVERITY_COLOR.get(severity, "#808080"),
        "fallback": escape(text),
        "title": escape(headline),
        "title_link": vigil_link(public_url, record),
        "text": body[:MAX_TEXT_CHARS],
        "fields": [
            {"title": name, "value": escape(value), "short": True}
            for name, value in fields
            if value not in (None, "")
        ]
        + ([{"title": "Labels", "value": escape(label_text), "short": False}] if labels else []),
        "footer": f"Vigil · {record.get('fingerprint') or ''}",
        "mrkdwn_in": ["text"],
    }
    return {"text": escape(text), "attachments": [attachment], "vigil": dict(record)}
