"""A realistic synthetic telemetry stream for the demo and the benchmarks: `vigil generate`.

Deterministic for a seed: the same seed, start time and rate give the same records. Each record
is in the raw format of its source, so it travels the same path as real telemetry; its event
time is the `ts_ms` it was generated for (never the wall clock). Every raw family appears
(see MIX): metrics and logs most often, then Falco, Kubernetes audit and CloudTrail, with CI
webhooks, Alertmanager notifications, scans and Terraform plans rare. Falco bursts, metric spikes
(each with a burst of 5xx logs and a HighErrorRate alert) and 403 bursts in the audit log feed
anomaly detection. A small share (`bad_ratio`) is deliberately malformed, to show dead-lettering.
What carries risk follows each service's scenario (app/generate_scenarios.py). `history`
replays a warm-up before the demo goes live (the detectors learn the usual values and rates)
and `inject` starts an incident and a Falco burst early, so the demo shows a metric and an
event-rate anomaly within its first minutes (`vigil generate --history`, what `make demo` runs).

The Falco alerts and JSON metric samples are built here; the other families in
app/generate_sources.py.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson

from app.generate_scenarios import SCENARIOS, with_falco, with_incidents
from app.generate_sources import HOSTS, IMAGES, SERVICES, Sources

__all__ = ["HOSTS", "IMAGES", "MIX", "SERVICES", "RawRecord", "TelemetryGenerator"]

#: (rule, priority, output template, tags) of common Falco rules.
FALCO_RULES = (
    (
        "Terminal shell in container",
        "Notice",
        "A shell was spawned in a container with an attached terminal (user={user} {container} "
        "shell=bash parent=runc cmdline=bash terminal=34816)",
        ["container", "shell", "mitre_execution"],
    ),
    (
        "Write below etc",
        "Error",
        "File below /etc opened for writing (user={user} command=sed -i s/a/b/ /etc/hosts "
        "file=/etc/hosts {container})",
        ["filesystem", "mitre_persistence"],
    ),
    (
        "Launch Privileged Container",
        "Informational",
        "Privileged container started (user={user} {container})",
        ["container", "cis"],
    ),
    (
        "Read sensitive file untrusted",
        "Warning",
        "Sensitive file opened for reading by non-trusted program (user={user} file=/etc/shadow "
        "{container})",
        ["filesystem", "mitre_credential_access"],
    ),
    (
        "Outbound Connection to C2 Servers",
        "Critical",
        "Outbound connection to C2 server (command=curl http://203.0.113.7/x {container})",
        ["network", "mitre_command_and_control"],
    ),
)

#: How often each rule fires, relative to the others a scenario allows.
_FALCO_WEIGHTS = (30, 8, 5, 6, 1)
_FALCO_SERVICES = with_falco(SERVICES)
_INCIDENT_SERVICES = with_incidents(SERVICES)
#: Falco bursts (event-rate anomalies) happen in the noisy service's containers.
_BURST_SERVICE = next(s for s in SERVICES if SCENARIOS[s].name == "noisy")

METRICS = {
    "http_requests_per_second": (120.0, 25.0, 6.0),  # baseline, daily amplitude, noise sd
    "http_request_latency_p99_ms": (180.0, 30.0, 12.0),
    "http_error_ratio": (0.01, 0.004, 0.002),
}
_METRIC_NAMES = tuple(METRICS)

#: (kind, raw family, share of the stream before bursts and malformed records).
MIX: tuple[tuple[str, str, float], ...] = (
    ("metric", "metrics", 0.330),
    ("log", "logs", 0.300),
    ("falco", "falco", 0.100),
    ("k8s_audit", "k8s-audit", 0.090),
    ("cloudtrail", "cloudtrail", 0.070),
    ("exposition", "metrics", 0.050),
    ("ci", "ci", 0.030),
    ("alertmanager", "alertmanager", 0.015),
    ("scan", "scans", 0.010),
    ("terraform", "terraform", 0.005),
)
#: The share of Falco alerts in the stream (for the history's Falco part).
_FALCO_SHARE = next(share for kind, _, share in MIX if kind == "falco") / sum(
    share for _, _, share in MIX
)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One generated raw record: its family (raw topic), event time and bytes.

    `malformed` marks the records made unreadable on purpose (they must be dead-lettered).
    """

    family: str
    ts_ms: int
    value: bytes
    malformed: bool = False


#: `history`: metric samples (the metric detector warms up over 150 windows) and Falco alerts
#: at their usual rate (the rate detector needs its per-node rates to settle) this long before
#: its end, then the full mix for the last `HISTORY_FULL_MS`.
HISTORY_METRICS_MS = 160 * 60_000
HISTORY_FALCO_MS = 80 * 60_000
HISTORY_FULL_MS = 3 * 60_000
#: One metric sample per series this often in the metrics-only part of the history.
HISTORY_SAMPLE_MS = 20_000
#: Chance that a record starts a Falco burst: one in 50,000 records (every ~17 min at 50/s),
#: rare enough that a burst stands out from a node's usual rate.
BURST_CHANCE = 0.00002
#: An injected incident: this many spiked samples; an injected burst: this many Falco alerts.
INJECTED_SPIKE_SAMPLES = 30
INJECTED_BURST_ALERTS = 100


class TelemetryGenerator:
    """Produces an endless, mixed, realistic telemetry stream from a seed."""

    def __init__(self, seed: int = 7, bad_ratio: float = 0.005) -> None:
        self.random = random.Random(seed)
        self.bad_ratio = bad_ratio
        self._burst_left = 0
        self._burst_host = HOSTS[0]
        self._spike_left = 0
        self._spike_service = SERVICES[0]
        self.sources = Sources(self.random)
        builders: dict[str, Callable[[int], bytes]] = {
            "metric": self._metric,
            "falco": self._falco,
            "log": self.sources.log,
            "k8s_audit": self.sources.k8s_audit,
            "cloudtrail": self.sources.cloudtrail,
            "exposition": self.sources.exposition,
            "ci": self.sources.ci,
            "alertmanager": self.sources.alertmanager,
            "scan": self.sources.scan,
            "terraform": self.sources.terraform,
        }
        total = sum(share for _, _, share in MIX)
        self._thresholds: list[float] = []
        running = 0.0
        for _, _, share in MIX:
            running += share / total
            self._thresholds.append(running)
        self._thresholds[-1] = 1.0
        self._choices = [(family, builders[kind]) for kind, family, _ in MIX]
        #: event times at which `inject` starts an incident (metric spike) and a Falco burst
        self._spike_at: int | None = None
        self._burst_at: int | None = None

    def history(self, end_ms: int, rate: float) -> Iterator[RawRecord]:
        """What the demo replays before it goes live, so that the detectors are warm when it
        starts: metric samples of every series from `end_ms - HISTORY_METRICS_MS` and Falco
        alerts at their share of `rate` from `end_ms - HISTORY_FALCO_MS` (in time order),
        then the full mix at `rate` for the last `HISTORY_FULL_MS`, all before `end_ms`."""
        full_from = end_ms - HISTORY_FULL_MS
        times = [
            (ts_ms, "metrics")
            for ts_ms in range(end_ms - HISTORY_METRICS_MS, full_from, HISTORY_SAMPLE_MS)
        ]
        falco_step = 1000.0 / (rate * _FALCO_SHARE)
        falco_from = end_ms - HISTORY_FALCO_MS
        count = int((full_from - falco_from) / falco_step)
        times += [(int(falco_from + i * falco_step), "falco") for i in range(count)]
        for ts_ms, family in sorted(times):
            if family == "falco":
                yield RawRecord("falco", ts_ms, self._falco(ts_ms))
                continue
            for service in SERVICES:
                for name in _METRIC_NAMES:
                    sample = self._metric(ts_ms, service, name, calm=True)
                    yield RawRecord("metrics", ts_ms, sample)
        yield from self.records(full_from, rate, int(HISTORY_FULL_MS / 1000 * rate))

    def inject(self, spike_at_ms: int, burst_at_ms: int) -> None:
        """Start an incident (a metric spike of an incident-prone service, its 5xx logs and
        alert) at the first record from `spike_at_ms` on, and a Falco burst from
        `burst_at_ms` on: the demo shows a metric and an event-rate anomaly early."""
        self._spike_at, self._burst_at = spike_at_ms, burst_at_ms

    def records(self, start_ms: int, rate: float, count: int | None = None) -> Iterator[RawRecord]:
        """`count` records (endless when None) with event times spaced `1000 / rate` ms apart."""
        step = 1000.0 / rate
        index = 0
        while count is None or index < count:
            yield self.record_at(int(start_ms + index * step))
            index += 1

    def record_at(self, ts_ms: int) -> RawRecord:
        """One record with event time `ts_ms`, its kind drawn from the stream's mix."""
        rnd = self.random
        self._start_injected(ts_ms)
        if rnd.random() < self.bad_ratio:
            return self._malformed(ts_ms)
        if self._burst_left > 0 or rnd.random() < BURST_CHANCE:
            return RawRecord("falco", ts_ms, self._falco_burst(ts_ms))
        if self.sources.forbidden_left > 0 and rnd.random() < 0.3:
            return RawRecord("k8s-audit", ts_ms, self.sources.k8s_forbidden(ts_ms))
        family, build = self._choices[bisect.bisect_right(self._thresholds, rnd.random())]
        return RawRecord(family, ts_ms, build(ts_ms))

    def _falco(self, ts_ms: int, host: str | None = None, service: str | None = None) -> bytes:
        """A Falco alert in a container of `service` (else one whose scenario has Falco rules),
        one of the rules its scenario lets fire."""
        rnd = self.random
        host = host or rnd.choice(HOSTS)
        service = service or rnd.choice(_FALCO_SERVICES)
        rules = SCENARIOS[service].falco_rules
        index = rnd.choices(rules, [_FALCO_WEIGHTS[i] for i in rules])[0]
        rule, priority, template, tags = FALCO_RULES[index]
        container_id = _container_id(host, service)
        tag = self.sources.version(service)
        container = f"container_id={container_id} image={IMAGES[service]}:{tag} k8s.ns=prod"
        user = rnd.choice(("root", "app", "nobody"))
        time = self.sources.clock.millis(ts_ms)
        alert = {
            "hostname": host,
            "output": f"{time}: {priority} " + template.format(user=user, container=container),
            "priority": priority,
            "rule": rule,
            "source": "syscall",
            "tags": tags,
            "time": time.replace("Z", "000000Z"),
            "output_fields": {
                "container.id": container_id,
                "container.image.repository": IMAGES[service],
                "container.image.tag": tag,
                "k8s.ns.name": "prod",
                "k8s.pod.name": f"{service}-{container_id[:5]}",
                "user.name": user,
                "evt.time": ts_ms * 1_000_000,
                "proc.cmdline": "bash",
            },
        }
        return orjson.dumps(alert)

    def _falco_burst(self, ts_ms: int) -> bytes:
        """A burst of alerts on one node, in the containers of a noisy (low-severity) service."""
        if self._burst_left == 0:
            self._burst_left = self.random.randint(40, 120)
            self._burst_host = self.random.choice(HOSTS)
        self._burst_left -= 1
        return self._falco(ts_ms, host=self._burst_host, service=_BURST_SERVICE)

    def _start_injected(self, ts_ms: int) -> None:
        if self._spike_at is not None and ts_ms >= self._spike_at:
            self._spike_at = None
            service = _INCIDENT_SERVICES[0]
            self._spike_left, self._spike_service = INJECTED_SPIKE_SAMPLES, service
            self.sources.incident(service)
        if self._burst_at is not None and ts_ms >= self._burst_at:
            self._burst_at = None
            self._burst_left, self._burst_host = INJECTED_BURST_ALERTS, HOSTS[1]

    def _metric(
        self, ts_ms: int, service: str | None = None, name: str | None = None, calm: bool = False
    ) -> bytes:
        """A JSON metric sample (of `service` and `name`, else random ones); now and then an
        incident-prone service spikes, unless `calm` (the history's normal operation)."""
        rnd = self.random
        service = service or rnd.choice(SERVICES)
        name = name or rnd.choice(_METRIC_NAMES)
        base, amplitude, noise = METRICS[name]
        day = (ts_ms / 86_400_000.0) * 2 * math.pi
        value = base + amplitude * math.sin(day) + rnd.gauss(0, noise)
        if not calm:
            spiking = self._spike_left == 0 and rnd.random() < 0.0004
            if spiking and service in _INCIDENT_SERVICES:
                self._spike_left, self._spike_service = rnd.randint(5, 20), service
                self.sources.incident(service)
            if self._spike_left > 0 and service == self._spike_service:
                self._spike_left -= 1
                value *= 4.0
        sample = {
            "name": name,
            "labels": {"service": service, "env": "prod"},
            "value": round(max(value, 0.0), 6),
            "timestamp": ts_ms,
        }
        return orjson.dumps(sample)

    def _malformed(self, ts_ms: int) -> RawRecord:
        """A record no adapter can read: broken JSON or bytes, a wrong type, a missing time."""
        family, value = self.random.choice(_MALFORMED)
        return RawRecord(family, ts_ms, value, malformed=True)


@functools.lru_cache(maxsize=64)
def _container_id(host: str, service: str) -> str:
    return hashlib.blake2b(f"{host}/{service}".encode(), digest_size=6).hexdigest()


#: (family, bytes) of the deliberately broken records, one per way of breaking.
_MALFORMED: tuple[tuple[str, bytes], ...] = (
    ("falco", b'{"rule": "Write below etc", "priority": "Err'),
    (
        "falco",
        orjson.dumps({"rule": 42, "priority": "Error", "output": "x", "time": 1_700_000_000_000}),
    ),
    ("metrics", b"\xff\xfe not utf-8"),
    ("metrics", b'http_requests_total{job="payments",code="200"} many 1700000000000\n'),
    ("scans", b'{"SchemaVersion": 2, "ArtifactName": "registry.example.com/payments:1.4.2", "Re'),
    (
        "k8s-audit",
        b'{"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "5f1c2a9e", '
        b'"stage": "ResponseComplete", "verb": "get", "objectRef": {"resource": "pods"}}',
    ),
    (
        "cloudtrail",
        b'{"eventVersion": "1.09", "eventTime": "yesterday", "eventSource": "ec2.amazonaws.com",'
        b' "eventName": "DescribeInstances", "recipientAccountId": "493817265094"}',
    ),
    (
        "logs",
        b'{"log": "GET /healthz\\n", "stream": "stdout", "kubernetes": '
        b'{"namespace_name": "prod", "pod_name": "search-0", "container_name": "search"}}',
    ),
)
