"""The metrics family: JSON metric samples with a daily cycle, noise and, now and then, a spike
of an incident-prone service; and Prometheus text exposition of one pod."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from app.generator.fleet import INCIDENT_SERVICES, PODS, SERVICES
from app.generator.source import Source

#: name -> (baseline, daily amplitude, noise standard deviation) of each JSON metric.
METRICS = {
    "http_requests_per_second": (120.0, 25.0, 6.0),
    "http_request_latency_p99_ms": (180.0, 30.0, 12.0),
    "http_error_ratio": (0.01, 0.004, 0.002),
}
METRIC_NAMES = tuple(METRICS)
#: Chance that a sample starts a spike (when none is under way); a spiked sample is 4 times
#: its usual value.
SPIKE_CHANCE = 0.0004
SPIKE_FACTOR = 4.0


def _no_spike_hook(service: str) -> None:
    """The default `on_spike`: nothing else happens."""


@dataclass(eq=False)
class Metrics(Source):
    """JSON metric samples and Prometheus text. `on_spike(service)` is called when a spike
    starts (the stream turns it into an incident: 5xx logs and an alert)."""

    on_spike: Callable[[str], None] = _no_spike_hook
    _spike_left: int = field(default=0, init=False)
    _spike_service: str = field(default=SERVICES[0], init=False)
    #: pod name -> its `http_requests_total` counter
    _requests: dict[str, int] = field(default_factory=dict, init=False)

    def start_spike(self, service: str, samples: int) -> None:
        """The next `samples` samples of `service` spike."""
        self._spike_left, self._spike_service = samples, service
        self.on_spike(service)

    def sample(
        self, ts_ms: int, service: str | None = None, name: str | None = None, calm: bool = False
    ) -> bytes:
        """A JSON metric sample (of `service` and `name`, else random ones); now and then an
        incident-prone service spikes, unless `calm` (the history's normal operation)."""
        rnd = self.rnd
        service = service or rnd.choice(SERVICES)
        name = name or rnd.choice(METRIC_NAMES)
        base, amplitude, noise = METRICS[name]
        day = (ts_ms / 86_400_000.0) * 2 * math.pi
        value = base + amplitude * math.sin(day) + rnd.gauss(0, noise)
        if not calm:
            spiking = self._spike_left == 0 and rnd.random() < SPIKE_CHANCE
            if spiking and service in INCIDENT_SERVICES:
                self.start_spike(service, rnd.randint(5, 20))
            if self._spike_left > 0 and service == self._spike_service:
                self._spike_left -= 1
                value *= SPIKE_FACTOR
        sample = {
            "name": name,
            "labels": {"service": service, "env": "prod"},
            "value": round(max(value, 0.0), 6),
            "timestamp": ts_ms,
        }
        return orjson.dumps(sample)

    def exposition(self, ts_ms: int) -> bytes:
        """A few Prometheus text exposition lines of one pod, with timestamps."""
        rnd = self.rnd
        service = rnd.choice(SERVICES)
        pod = rnd.choice(PODS[service])
        total = self._requests.get(pod["name"], 0) + rnd.randint(20, 400)
        self._requests[pod["name"]] = total
        labels = f'job="{service}",instance="{pod["ip"]}:8080",pod="{pod["name"]}"'
        memory = rnd.gauss(1.6e8, 1.2e7)
        text = (
            "# HELP http_requests_total Total HTTP requests served.\n"
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{{labels},code="200"}} {total} {ts_ms}\n'
            "# TYPE process_resident_memory_bytes gauge\n"
            f"process_resident_memory_bytes{{{labels}}} {memory:.6e} {ts_ms}\n"
            f"up{{{labels}}} 1 {ts_ms}\n"
        )
        return text.encode()
