"""Alertmanager webhook notifications: the alerts each service's scenario raises, firing in
groups of one to three pods, and later resolved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from app.generator.fleet import ALERTING, NAMESPACE, PODS
from app.generator.scenarios import SCENARIOS
from app.generator.source import Source
from app.model.fingerprints import alertmanager_fingerprint

#: (alertname, severity, summary, description, expression)
ALERTS = (
    (
        "HighErrorRate",
        "critical",
        "High HTTP 5xx ratio on {service}",
        "{service} returns more than 5% 5xx responses over the last 5 minutes.",
        'sum(rate(http_requests_total{{job="{service}",code=~"5.."}}[5m])) / '
        'sum(rate(http_requests_total{{job="{service}"}}[5m])) > 0.05',
    ),
    (
        "HighLatencyP99",
        "warning",
        "p99 latency above 500ms on {service}",
        "{service} p99 latency has been above 500ms for 10 minutes.",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket"
        '{{job="{service}"}}[5m]))) > 0.5',
    ),
    (
        "KubePodCrashLooping",
        "warning",
        "Pod is crash looping.",
        'Pod prod/{pod} ({service}) is in waiting state (reason: "CrashLoopBackOff").',
        'max_over_time(kube_pod_container_status_waiting_reason{{reason="CrashLoopBackOff",'
        'namespace="prod"}}[5m]) >= 1',
    ),
)


@dataclass(eq=False)
class Alertmanager(Source):
    """Webhooks that fire new alert groups and resolve the ones still firing."""

    #: webhook payloads still firing, oldest first
    _firing: list[dict[str, Any]] = field(default_factory=list, init=False)
    #: the service whose first alert fires next (an incident started)
    _alert_hint: str | None = field(default=None, init=False)

    def incident(self, service: str) -> None:
        """A metric spike of `service` started: its first alert fires with the next webhook."""
        self._alert_hint = service

    def webhook(self, ts_ms: int) -> bytes:
        """A webhook: 1-3 new firing alerts, or the resolution of an earlier firing group."""
        rnd = self.rnd
        if self._firing and (len(self._firing) >= 8 or rnd.random() < 0.45):
            payload = self._firing.pop(0)
            payload["status"] = "resolved"
            for alert in payload["alerts"]:
                alert["status"] = "resolved"
                alert["endsAt"] = self.clock.millis(ts_ms)
            return orjson.dumps(payload)
        if self._alert_hint is not None:
            service = self._alert_hint
            alert_index = SCENARIOS[service].alerts[0]
            self._alert_hint = None
        else:
            service = rnd.choice(ALERTING)
            alert_index = rnd.choice(SCENARIOS[service].alerts)
        name, severity, summary, description, expr = ALERTS[alert_index]
        alerts = []
        for pod in rnd.sample(PODS[service], rnd.randint(1, 3)):
            labels = {
                "alertname": name,
                "namespace": NAMESPACE,
                "pod": pod["name"],
                "service": service,
                "severity": severity,
            }
            alerts.append(
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {
                        "summary": summary.format(service=service),
                        "description": description.format(service=service, pod=pod["name"]),
                        "runbook_url": f"https://runbooks.acme.example/{name.lower()}",
                    },
                    "startsAt": self.clock.millis(ts_ms),
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.monitoring:9090/graph?g0.expr="
                    + expr.format(service=service).replace(" ", "+"),
                    "fingerprint": _fingerprint(name, pod["name"], labels),
                }
            )
        payload = {
            "version": "4",
            "groupKey": f'{{}}:{{alertname="{name}", service="{service}"}}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "vigil",
            "groupLabels": {"alertname": name, "service": service},
            "commonLabels": {"alertname": name, "namespace": NAMESPACE, "service": service,
                             "severity": severity},
            "commonAnnotations": {"summary": summary.format(service=service)},
            "externalURL": "http://alertmanager.monitoring:9093",
            "alerts": alerts,
        }  # fmt: skip
        self._firing.append(payload)
        return orjson.dumps(payload)


_FINGERPRINTS: dict[tuple[str, str], str] = {}


def _fingerprint(alertname: str, pod: str, labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint of an alert's labels (alertname and pod determine them)."""
    key = (alertname, pod)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = alertmanager_fingerprint(labels)
    return _FINGERPRINTS[key]
