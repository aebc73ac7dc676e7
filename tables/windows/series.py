"""Which windowed series an event feeds: metric values and event-rate counts.

Series are keyed by the event's entity, so their state lives in the same partition as the
entity's events. Every event counts toward the rate of its own type on its entity; some event
kinds also count toward a named security rate (failed logins, access denied, 403s, CI failures,
5xx and error logs) that the anomaly detector watches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.model.events import Event

_DENIED = re.compile(r"(?i)accessdenied|unauthorized|forbidden")


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One contribution to a series: `kind` is `metric` (value) or `rate` (count of 1)."""

    key: str
    kind: str
    name: str
    value: float


def series_points(event: Event) -> list[SeriesPoint]:
    """The series updates one canonical event makes."""
    attributes = event.attributes
    if event.type == "metric":
        value = attributes.get("value")
        series = attributes.get("series") or attributes.get("name")
        if isinstance(value, int | float) and not isinstance(value, bool) and series:
            return [SeriesPoint(f"{event.entity}|m|{series}", "metric", str(series), float(value))]
        return []
    names = [f"events:{event.type}", *security_rates(event)]
    return [SeriesPoint(f"{event.entity}|r|{name}", "rate", name, 1.0) for name in names]


def security_rates(event: Event) -> list[str]:
    """Named security-relevant rates an event counts toward."""
    a = event.attributes
    rates: list[str] = []
    if event.type == "runtime_alert":
        rates.append("falco_alerts")
    elif event.type == "cloud_api_call":
        if a.get("event_name") == "ConsoleLogin" and "console_login_failed" in (
            a.get("risk_reasons") or []
        ):
            rates.append("failed_logins")
        error = a.get("error_code")
        if isinstance(error, str) and _DENIED.search(error):
            rates.append("access_denied")
    elif event.type == "k8s_audit":
        if a.get("response_code") in (401, 403):
            rates.append("k8s_forbidden")
    elif event.type == "ci_run":
        if a.get("ci_status") == "failure":
            rates.append("ci_failures")
    elif event.type == "log":
        status = a.get("http_status")
        if isinstance(status, int) and status >= 500:
            rates.append("http_5xx")
        if a.get("level") in ("error", "critical", "fatal"):
            rates.append("log_errors")
    return rates
