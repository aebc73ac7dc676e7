"""Falco alerts (`json_output: true`), bare or in the Falcosidekick envelope.

Falco JSON: `time` (ISO 8601, ns), `rule`, `priority`, `output`, `hostname`, `source`, `tags`,
`output_fields` (REFERENCE.md). Falcosidekick adds a random `uuid`, which is kept as an
attribute but never used for identity: it differs for the same alert.
"""

from __future__ import annotations

from typing import Any

from app.model.events import Event, event_id, parse_time
from app.sources.base import optional, require, require_object
from app.sources.errors import ErrorCode, NormalizeError

#: Falco priorities (syslog levels) on Vigil's severity scale.
PRIORITY_SEVERITY: dict[str, str] = {
    "emergency": "critical",
    "alert": "critical",
    "critical": "critical",
    "error": "high",
    "warning": "medium",
    "notice": "low",
    "informational": "info",
    "info": "info",
    "debug": "info",
}


class FalcoAdapter:
    """One `runtime_alert` event per Falco alert, keyed by host."""

    name = "falco"
    family = "falco"

    def matches(self, doc: Any) -> bool:
        return isinstance(doc, dict) and "rule" in doc and "priority" in doc and "output" in doc

    def normalize(self, doc: Any, raw: bytes) -> list[Event]:
        record = require_object(doc, "Falco alert")
        rule = require(record, "rule", str)
        priority = require(record, "priority", str)
        output = require(record, "output", str)
        severity = PRIORITY_SEVERITY.get(priority.lower())
        if severity is None:
            raise NormalizeError(ErrorCode.INVALID_VALUE, f"unknown Falco priority {priority!r}")
        fields = optional(record, "output_fields", dict, {})
        ts_ms = _alert_time(record, fields)
        hostname = optional(record, "hostname", str) or fields.get("hostname")
        attributes: dict[str, Any] = {
            "rule": rule,
            "priority": priority,
            "output": output,
            "falco_source": optional(record, "source", str, "syscall"),
            "tags": optional(record, "tags", list, []),
            "hostname": hostname,
            "output_fields": fields,
        }
        for attr, field_name in (
            ("container_id", "container.id"),
            ("container_name", "container.name"),
            ("image", "container.image.repository"),
            ("image_tag", "container.image.tag"),
            ("namespace", "k8s.ns.name"),
            ("pod", "k8s.pod.name"),
            ("user", "user.name"),
        ):
            value = fields.get(field_name)
            if value is not None:
                attributes[attr] = value
        if "uuid" in record:
            attributes["sidekick_uuid"] = record["uuid"]
        return [
            Event(
                id=event_id(self.name, rule, ts_ms, hostname or "", output),
                source=self.name,
                type="runtime_alert",
                ts_ms=ts_ms,
                entity=f"host:{hostname or 'unknown'}",
                severity=severity,
                attributes=attributes,
            )
        ]


def _alert_time(record: dict[str, Any], fields: dict[str, Any]) -> int:
    """The alert's own time: `time`, else the `evt.time` output field (ns)."""
    candidates = (
        ("time", record.get("time")),
        ("output_fields.evt.time", fields.get("evt.time")),
    )
    for path, value in candidates:
        if value is None:
            continue
        try:
            return parse_time(value)
        except ValueError:
            raise NormalizeError(
                ErrorCode.INVALID_VALUE, f"'{path}' is not a timestamp: {value!r}"
            ) from None
    raise NormalizeError(ErrorCode.MISSING_FIELD, "required field 'time' is missing")
