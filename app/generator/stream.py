"""The record stream of `vigil generate`: which family each record comes from, at what event
time, and the demo's warm-up history and injected incidents.

Deterministic for a seed: the same seed, start time and rate give the same records. Each record
is in the raw format of its source, so it travels the same path as real telemetry; its event
time is the `ts_ms` it was generated for (never the wall clock). Every raw family appears
(see MIX): metrics and logs most often, then Falco, Kubernetes audit and CloudTrail, with CI
webhooks, Alertmanager notifications, scans and Terraform plans rare. Falco bursts, metric spikes
(each with a burst of 5xx logs and a HighErrorRate alert) and 403 bursts in the audit log feed
anomaly detection. A small share (`bad_ratio`) is deliberately malformed, to show dead-lettering.
What carries risk follows each service's scenario (app/generator/scenarios.py). `history`
replays a warm-up before the demo goes live (the detectors learn the usual values and rates)
and `inject` starts an incident and a Falco burst early, so the demo shows a metric and an
event-rate anomaly within its first minutes (`vigil generate --history`, what `make demo` runs).

Every family draws from the stream's one `random.Random`: the order of the draws is part of
the output, and a change that draws in another order changes every record after it.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from app.generator.alertmanager import Alertmanager
from app.generator.ci import Ci
from app.generator.clock import Clock
from app.generator.cloudtrail import CloudTrail
from app.generator.falco import Falco
from app.generator.fleet import HOSTS, INCIDENT_SERVICES, SERVICES
from app.generator.kubernetes import KubernetesAudit
from app.generator.logs import Logs
from app.generator.malformed import MALFORMED
from app.generator.metrics import METRIC_NAMES, Metrics
from app.generator.scans import Scans
from app.generator.source import Releases
from app.generator.terraform import Terraform

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

    @property
    def key(self) -> bytes:
        """The Kafka key it is produced with: its family. One key per family keeps each source
        in one raw partition, in event-time order. Spread over partitions, a backlog (the
        demo's history) is read at a different pace per partition: the partition read ahead
        moves the watermark, and what the others still hold is late (on `vigil.late`, left
        out of its windows)."""
        return self.family.encode()


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
#: Chance that a record continues a 403 burst in the audit log while one is under way.
FORBIDDEN_CHANCE = 0.3
#: An injected incident: this many spiked samples; an injected burst: this many Falco alerts.
INJECTED_SPIKE_SAMPLES = 30
INJECTED_BURST_ALERTS = 100


class TelemetryGenerator:
    """Produces an endless, mixed, realistic telemetry stream from a seed."""

    def __init__(self, seed: int = 7, bad_ratio: float = 0.005) -> None:
        rnd = self.random = random.Random(seed)
        self.bad_ratio = bad_ratio
        clock, releases = Clock(), Releases()
        self.ci = Ci(rnd, clock, releases)  # the one draw at construction: its first run id
        self.falco = Falco(rnd, clock, releases)
        self.metrics = Metrics(rnd, clock, releases, on_spike=self._incident)
        self.logs = Logs(rnd, clock, releases)
        self.alertmanager = Alertmanager(rnd, clock, releases)
        self.kubernetes = KubernetesAudit(rnd, clock, releases)
        self.cloudtrail = CloudTrail(rnd, clock, releases)
        self.scans = Scans(rnd, clock, releases)
        self.terraform = Terraform(rnd, clock, releases)
        builders: dict[str, Callable[[int], bytes]] = {
            "metric": self.metrics.sample,
            "falco": self.falco.alert,
            "log": self.logs.record,
            "k8s_audit": self.kubernetes.event,
            "cloudtrail": self.cloudtrail.event,
            "exposition": self.metrics.exposition,
            "ci": self.ci.webhook,
            "alertmanager": self.alertmanager.webhook,
            "scan": self.scans.report,
            "terraform": self.terraform.plan,
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
                yield RawRecord("falco", ts_ms, self.falco.alert(ts_ms))
                continue
            for service in SERVICES:
                for name in METRIC_NAMES:
                    sample = self.metrics.sample(ts_ms, service, name, calm=True)
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
        """One record with event time `ts_ms`: malformed (`bad_ratio`), the next of a Falco or
        403 burst, else of the kind drawn from the stream's mix."""
        rnd = self.random
        self._start_injected(ts_ms)
        if rnd.random() < self.bad_ratio:
            family, value = rnd.choice(MALFORMED)
            return RawRecord(family, ts_ms, value, malformed=True)
        if self.falco.bursting or rnd.random() < BURST_CHANCE:
            return RawRecord("falco", ts_ms, self.falco.burst(ts_ms))
        if self.kubernetes.forbidden_left > 0 and rnd.random() < FORBIDDEN_CHANCE:
            return RawRecord("k8s-audit", ts_ms, self.kubernetes.forbidden(ts_ms))
        family, build = self._choices[bisect.bisect_right(self._thresholds, rnd.random())]
        return RawRecord(family, ts_ms, build(ts_ms))

    def _incident(self, service: str) -> None:
        """A metric spike of `service` started: a burst of its 5xx logs and, with the next
        Alertmanager webhook, its first alert follow."""
        self.logs.incident(service)
        self.alertmanager.incident(service)

    def _start_injected(self, ts_ms: int) -> None:
        """Start what `inject` scheduled once its time has come."""
        if self._spike_at is not None and ts_ms >= self._spike_at:
            self._spike_at = None
            self.metrics.start_spike(INCIDENT_SERVICES[0], INJECTED_SPIKE_SAMPLES)
        if self._burst_at is not None and ts_ms >= self._burst_at:
            self._burst_at = None
            self.falco.start_burst(HOSTS[1], INJECTED_BURST_ALERTS)
