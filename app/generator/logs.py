"""Container logs as Fluent Bit ships them (Kubernetes filter applied): mostly access logs in
the common log format, some logfmt application lines, and bursts of 5xx during an incident."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from app.generator.fleet import IMAGES, INCIDENT_SERVICES, NAMESPACE, PODS, SERVICES
from app.generator.source import Source

#: (method, path) of each service's routes; `{id}` is a random number.
ROUTES = {
    "payments": (("POST", "/api/v1/payments"), ("GET", "/api/v1/payments/{id}"),
                 ("POST", "/api/v1/refunds")),
    "checkout": (("POST", "/api/v1/checkout"), ("GET", "/api/v1/cart/{id}"),
                 ("PUT", "/api/v1/cart/{id}/items")),
    "search": (("GET", "/api/v1/search?q=shoes&page={id}"), ("GET", "/api/v1/suggest?q=sh"),
               ("GET", "/api/v1/products/{id}")),
    "auth": (("POST", "/oauth/token"), ("GET", "/.well-known/jwks.json"), ("POST", "/login")),
}  # fmt: skip
#: HTTP statuses of normal traffic, 1000 slots: 80% 200, ..., 0.3% 500.
STATUSES = [200] * 800 + [201] * 60 + [204] * 20 + [304] * 30 + [400] * 25 + [401] * 20
STATUSES += [404] * 30 + [429] * 12 + [500] * 3
#: Statuses of the requests that fail during an incident.
ERRORS = (500, 502, 503, 503, 504)
AGENTS = ("Go-http-client/1.1", "okhttp/4.12.0", "Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0")
CLIENTS = [f"10.42.{i % 8}.{17 + i * 7 % 230}" for i in range(64)]
#: (level, message) of the application's own log lines.
APP_MESSAGES = (
    ("info", "request completed"),
    ("info", "cache refreshed"),
    ("warn", "slow query detected duration_ms=812"),
    ("info", "connection pool resized size=20"),
)


@dataclass(eq=False)
class Logs(Source):
    """Fluent Bit records; an incident (or, rarely, chance) starts a burst of 5xx responses."""

    _error_left: int = field(default=0, init=False)
    _error_service: str = field(default=INCIDENT_SERVICES[0], init=False)

    def incident(self, service: str) -> None:
        """A metric spike of `service` started: a burst of its 5xx responses follows."""
        self._error_left, self._error_service = self.rnd.randint(40, 150), service

    def record(self, ts_ms: int) -> bytes:
        """A Fluent Bit record (Kubernetes filter applied): mostly access logs, some app logs."""
        rnd = self.rnd
        if self._error_left > 0 and rnd.random() < 0.6:
            self._error_left -= 1
            service, status = self._error_service, rnd.choice(ERRORS)
        else:
            if self._error_left == 0 and rnd.random() < 0.0001:
                self._error_left = rnd.randint(40, 150)
                self._error_service = rnd.choice(INCIDENT_SERVICES)
            service = SERVICES[rnd.getrandbits(2)]
            status = STATUSES[int(rnd.random() * 1000)]
        # getrandbits and indexing rather than choice/randint: logs are a third of the stream
        pod = PODS[service][rnd.getrandbits(8) % 3]
        clock = self.clock
        bits = rnd.getrandbits(32)
        if status < 500 and bits & 7 == 0:
            level, message = APP_MESSAGES[bits >> 3 & 3]
            line = f'time="{clock.millis(ts_ms)}" level={level} msg="{message}"\n'
        else:
            method, path = ROUTES[service][(bits >> 5 & 255) % 3]
            path = path.format(id=bits >> 13 & 0xFFFF)
            if status >= 500 and bits & 3 == 0:
                line = f'time="{clock.millis(ts_ms)}" level=error msg="upstream request failed" '
                line += f'status={status} path="{path}"\n'
            else:
                client = CLIENTS[bits >> 3 & 63]
                size = 120 + (bits >> 9 & 4095) if status < 204 else 0 if status < 400 else 64
                agent = AGENTS[bits >> 29 & 3]
                line = f'{client} - - [{clock.apache(ts_ms)}] "{method} {path} HTTP/1.1" '
                line += f'{status} {size} "-" "{agent}"\n'
        record = {
            "@timestamp": clock.micros(ts_ms),
            "log": line,
            "stream": "stderr" if status >= 500 else "stdout",
            "time": clock.nanos(ts_ms),
            "kubernetes": {
                "pod_name": pod["name"],
                "namespace_name": NAMESPACE,
                "pod_id": pod["id"],
                "labels": {"app": service, "pod-template-hash": pod["hash"]},
                "host": pod["host"],
                "container_name": service,
                "docker_id": pod["docker_id"],
                "container_image": f"{IMAGES[service]}:{self.releases.version(service)}",
            },
        }
        return orjson.dumps(record)
