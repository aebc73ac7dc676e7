"""Prometheus Alertmanager webhook payloads (`webhook_config`, payload `version: "4"`).

Payload: `version`, `groupKey`, `status` (firing | resolved), `receiver`, `groupLabels`,
`commonLabels`, `commonAnnotations`, `externalURL`, `truncatedAlerts` and `alerts[]` of
`{status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint}` (Alertmanager docs,
"webhook_config"). Older senders omit the per-alert `status`, `fingerprint` and `generatorURL`;
then the payload's `status` applies and the fingerprint is computed the way Alertmanager does
(prometheus/common `model.LabelSet.Fingerprint`, see REFERENCE.md).
"""

from __future__ import annotations

from typing import Any

from app.model.events import Event, event_id, format_time, parse_time
from app.model.fingerprints import alertmanager_fingerprint
from app.sources.base import check_time_range, optional, require, require_object
from app.sources.errors import ErrorCode, NormalizeError

#: `labels.severity` values on Vigil's scale; anything else (or none) is `medium`.
SEVERITY_LABELS: dict[str, str] = {
    "critical": "critical",
    "page": "critical",
    "emergency": "critical",
    "fatal": "critical",
    "error": "high",
    "high": "high",
    "major": "high",
    "warning": "medium",
    "warn": "medium",
    "medium": "medium",
    "low": "low",
    "minor": "low",
    "info": "info",
    "informational": "info",
    "none": "info",
}
DEFAULT_SEVERITY = "medium"

#: Go's zero `time.Time`, which Alertmanager writes for an unset `endsAt`.
ZERO_TIME_PREFIX = "0001-01-01T00:00:00"
STATUSES = ("firing", "resolved")
MAX_ANNOTATION_CHARS = 1024


class AlertmanagerAdapter:
    """One `prom_alert` event per alert in an Alertmanager webhook body."""

    name = "alertmanager"
    family = "alertmanager"

    def matches(self, doc: Any) -> bool:
        return (
            isinstance(doc, dict)
            and "alerts" in doc
            and ("groupKey" in doc or "receiver" in doc or "version" in doc)
        )

    def normalize(self, doc: Any, raw: bytes) -> list[Event]:
        payload = require_object(doc, "Alertmanager webhook")
        alerts = require(payload, "alerts", list)
        if not alerts:
            raise NormalizeError(ErrorCode.EMPTY, "webhook carries no alerts")
        context: dict[str, Any] = {
            "group_key": optional(payload, "groupKey", str),
            "receiver": optional(payload, "receiver", str),
            "external_url": optional(payload, "externalURL", str),
            "group_labels": _string_map(payload, "groupLabels"),
        }
        truncated = optional(payload, "truncatedAlerts", int)
        if truncated:
            context["truncated_alerts"] = truncated
        payload_status = optional(payload, "status", str)
        return [
            self._alert_event(alert, index, payload_status, context)
            for index, alert in enumerate(alerts)
        ]

    def _alert_event(
        self, alert: Any, index: int, payload_status: str | None, context: dict[str, Any]
    ) -> Event:
        where = f"alerts[{index}]"
        alert = require_object(alert, where)
        labels = _string_map(alert, "labels", where, required=True)
        status = optional(alert, "status", str) or payload_status
        if status is None:
            raise NormalizeError(ErrorCode.MISSING_FIELD, f"'{where}.status' is missing")
        if status not in STATUSES:
            raise NormalizeError(ErrorCode.INVALID_VALUE, f"'{where}.status' is {status!r}")
        starts_ms = _alert_time(alert, "startsAt", where, required=True)
        ends_ms = _alert_time(alert, "endsAt", where, required=False)
        ts_ms = ends_ms if status == "resolved" and ends_ms is not None else starts_ms
        fingerprint = optional(alert, "fingerprint", str) or alertmanager_fingerprint(labels)
        alertname = labels.get("alertname")
        severity_label = labels.get("severity")
        severity = SEVERITY_LABELS.get((severity_label or "").lower(), DEFAULT_SEVERITY)
        annotations = {
            key: value[:MAX_ANNOTATION_CHARS]
            for key, value in _string_map(alert, "annotations", where).items()
        }
        attributes: dict[str, Any] = {
            "alertname": alertname,
            "status": status,
            "fingerprint": fingerprint,
            "labels": labels,
            "annotations": annotations,
            "severity_label": severity_label,
            "starts_at": format_time(starts_ms),
            "ends_at": format_time(ends_ms) if ends_ms is not None else None,
            "ends_at_ms": ends_ms,
            "generator_url": optional(alert, "generatorURL", str),
            **context,
        }
        # A firing alert is re-sent with a moving endsAt; only a resolved one has a final end.
        identity_end = ends_ms if status == "resolved" else None
        return Event(
            id=event_id(self.name, fingerprint, status, starts_ms, identity_end),
            source=self.name,
            type="prom_alert",
            ts_ms=ts_ms,
            entity=_entity(labels, alertname, fingerprint),
            severity=severity,
            attributes=attributes,
        )


def _string_map(
    doc: dict[str, Any], path: str, where: str = "", required: bool = False
) -> dict[str, str]:
    """A `{string: string}` object (labels, annotations), or WRONG_TYPE."""
    full = f"{where}.{path}" if where else path
    value = require(doc, path, dict) if required else optional(doc, path, dict, {})
    for key, item in value.items():
        if not isinstance(item, str):
            raise NormalizeError(ErrorCode.WRONG_TYPE, f"'{full}.{key}' must be a string")
    return value


def _alert_time(alert: dict[str, Any], path: str, where: str, required: bool) -> int | None:
    """`startsAt`/`endsAt` as epoch ms; Go's zero time counts as unset."""
    value = alert.get(path)
    if value is None or (isinstance(value, str) and value.startswith(ZERO_TIME_PREFIX)):
        if required:
            raise NormalizeError(ErrorCode.MISSING_FIELD, f"'{where}.{path}' is missing")
        return None
    if not isinstance(value, str):
        raise NormalizeError(ErrorCode.WRONG_TYPE, f"'{where}.{path}' must be a string")
    try:
        ts_ms = parse_time(value)
    except ValueError:
        raise NormalizeError(
            ErrorCode.INVALID_VALUE, f"'{where}.{path}' is not a timestamp: {value!r}"
        ) from None
    return check_time_range(ts_ms, f"{where}.{path}")


def _entity(labels: dict[str, str], alertname: str | None, fingerprint: str) -> str:
    """`service:` from service/app/job, else `host:` from instance, else `alert:<alertname>`."""
    for key in ("service", "app", "job"):
        if labels.get(key):
            return f"service:{labels[key]}"
    instance = labels.get("instance")
    if instance:
        return f"host:{strip_port(instance)}"
    return f"alert:{alertname or fingerprint}"


def strip_port(address: str) -> str:
    """`host:9100` -> `host`, `[::1]:9100` -> `::1`; a bare IPv6 address stays whole."""
    if address.startswith("["):
        end = address.find("]")
        return address[1:end] if end > 0 else address
    host, sep, port = address.rpartition(":")
    if sep and host and ":" not in host and port.isdigit():
        return host
    return address
