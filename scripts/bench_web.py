#!/usr/bin/env python3
"""Web view latency: every dashboard page's API with 10,000 entities and 5,000 alerts loaded;
prints JSON (a table on stderr).

    scripts/bench_web.py [--requests 100] [--entities 10000] [--alerts 5000] [--keep]

Starts two Vigil workers on the local broker with their own app id and topic prefix (as
scripts/bench_gate.py does), produces `--alerts` Falco alerts on as many hosts and metric
samples for the other `--entities - --alerts` services (every one an entity, every host one
alert instance), waits until the workers hold them all, then times `--requests` sequential
requests of each API a page calls, alternating the two workers (each answer merges both
workers' parts: app/web/gather.py). It does so twice: `loading`, as soon as the counts are
reached, while the workers still digest the backlog (alert notifications, risk signals,
standby changelogs: a request then waits whenever an agent's step holds the event loop), and
`settled`, once neither worker's consumer lag has exceeded 100 records for 5 s (the backlog
is digested; clock ticks and timers still come and go); the 200 ms target of issue 23 is
judged on both. Reported per phase and API: p50/p90/p99/max/mean in ms and whether the p99
is under the target. Topics are deleted afterwards unless `--keep`; worker logs stay in
var/bench-web/<tag>/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from bench_gate import summary, wait_for, with_two_workers  # noqa: E402

from app import kafka_io  # noqa: E402

TOKEN = "bench-web-read-token"
TARGET_P99_MS = 200.0
#: The `settled` pass starts once no worker's consumer lag exceeded SETTLED_LAG records for
#: SETTLED_S seconds.
SETTLED_S = 5.0
SETTLED_LAG = 100
MIN = 60_000
#: API name -> path, grouped by the page that calls it.
APIS = {
    "overview": "/api/overview?minutes=15",
    "risk_table": "/api/tables/risk?limit=500",
    "alerts": "/api/alerts?state=firing&limit=25",
    "alerts_filtered": "/api/alerts?state=all&limit=25&filter="
    + "%7Bseverity%3D%22critical%22%2C%20alertname%3D~%22Outbound.%2A%22%7D",
    "alerts_page_40": "/api/alerts?state=firing&limit=25&offset=1000",
    "anomalies": "/api/anomalies?limit=20",
    "risk_history": "/api/risk/history?limit=8",
    "drift": "/api/drift?limit=200",
    "posture": "/api/posture",
    "silences": "/api/silences",
    "audit": "/api/audit",
    "pipeline": "/api/pipeline/workers",
}
RULES = (
    ("Terminal shell in container", "Notice"),
    ("Write below etc", "Error"),
    ("Launch Privileged Container", "Informational"),
    ("Read sensitive file untrusted", "Warning"),
    ("Outbound Connection to C2 Servers", "Critical"),
)


def log(message: str) -> None:
    print(f"[bench-web {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def falco_alert(ts_ms: int, host: int) -> bytes:
    rule, priority = RULES[host % len(RULES)]
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms / 1000))
    return orjson.dumps(
        {
            "hostname": f"bench-host-{host:05d}",
            "output": f"{rule} (user=root container_id=c{host:011d} image=registry.example.com/x)",
            "priority": priority,
            "rule": rule,
            "source": "syscall",
            "tags": ["container"],
            "time": f"{when}.{ts_ms % 1000:03d}000000Z",
            "output_fields": {"container.id": f"c{host:011d}", "proc.cmdline": "bash"},
        }
    )


def metric_sample(ts_ms: int, service: int) -> bytes:
    return orjson.dumps(
        {
            "name": "http_requests_per_second",
            "labels": {"service": f"bench-svc-{service:05d}", "env": "prod"},
            "value": 100.0 + service % 13,
            "timestamp": ts_ms,
        }
    )


def records(entities: int, alerts: int, now_ms: int, topic: Any) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value): samples over 5 minutes of event time, then the alerts over the
    last minute (so they still fire when the pages are timed)."""
    start = now_ms - 6 * MIN
    out = [
        (topic("raw:falco"), b"falco", falco_alert(start + 5 * MIN + i * MIN // alerts, i))
        for i in range(alerts)
    ]
    services = max(0, entities - alerts)
    out += [
        (
            topic("raw:metrics"),
            b"metrics",
            metric_sample(start + i * (5 * MIN) // services, i),
        )
        for i in range(services)
    ]
    return out


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        return response.status, await response.json(content_type=None)


async def bench(args: argparse.Namespace, factory: Any, bases: list[str]) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=60)
    sessions = [aiohttp.ClientSession(timeout=timeout) for _ in bases]
    try:
        started = time.monotonic()

        async def assigned():
            views = [
                (await get_json(s, f"{b}/api/pipeline"))[1]
                for s, b in zip(sessions, bases, strict=True)
            ]
            parts = [v.get("event_partitions") for v in views]
            return all(parts) and not any(v.get("rebalancing") for v in views)

        await wait_for("both workers to own partitions", assigned, args.timeout)
        log(f"workers ready in {time.monotonic() - started:.1f} s")
        batch = records(args.entities, args.alerts, int(time.time() * 1000), factory.topic)
        await kafka_io.ensure_topics(
            factory.bootstrap,
            sorted({t for t, _, _ in batch}),
            factory.settings.partitions,
            factory.settings.replicas,
        )
        await kafka_io.produce(factory.bootstrap, iter(batch), linger_ms=20)
        log(f"produced {len(batch)} records")

        async def loaded():
            status, body = await get_json(sessions[0], f"{bases[0]}/api/overview")
            if status != 200:
                return None
            log(f"  {body['entities']} entities, {body['alerts']} alerts ({body['firing']} firing)")
            done = body["entities"] >= args.entities and body["alerts"] >= args.alerts
            return body if done else None

        loaded_body = await wait_for("the entities and alerts", loaded, args.timeout, interval=3)
        log(f"loaded in {time.monotonic() - started:.1f} s")
        result: dict[str, Any] = {
            "setup": {
                "workers": len(bases),
                "entities": loaded_body["entities"],
                "alerts": loaded_body["alerts"],
                "firing": loaded_body["firing"],
                "requests": args.requests,
            },
            "target_p99_ms": TARGET_P99_MS,
        }
        result["loading"] = await time_apis(args, sessions, bases)
        settled_at = time.monotonic()
        calm_since: list[float] = []

        async def settled():
            lags = [await consumer_lag(s, b) for s, b in zip(sessions, bases, strict=True)]
            if any(lag is None or lag > SETTLED_LAG for lag in lags):
                calm_since.clear()
                return None
            calm_since[:] = calm_since or [time.monotonic()]
            return time.monotonic() - calm_since[0] >= SETTLED_S and lags

        lags = await wait_for("the consumer lags to settle", settled, args.timeout, interval=1)
        log(f"settled {time.monotonic() - settled_at:.1f} s after the loading pass (lag {lags})")
        result["settled"] = await time_apis(args, sessions, bases)
        result["apis"] = result["settled"]
        result["all_under_target"] = all(
            a["under_target"] for phase in ("loading", "settled") for a in result[phase].values()
        )
        return result
    finally:
        for session in sessions:
            await session.close()


async def consumer_lag(session: aiohttp.ClientSession, base: str) -> float | None:
    """A worker's total consumer lag over its assigned partitions (None: not reported)."""
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("vigil_consumer_lag_total "):
            return float(line.split()[1])
    return None


async def time_apis(
    args: argparse.Namespace, sessions: list[aiohttp.ClientSession], bases: list[str]
) -> dict[str, Any]:
    """`args.requests` sequential requests of each API, alternating the workers."""
    apis: dict[str, Any] = {}
    for name, path in APIS.items():
        for i in range(5):  # warm-up
            await get_json(sessions[i % 2], f"{bases[i % 2]}{path}")
        times: list[float] = []
        for i in range(args.requests):
            which = i % len(bases)
            t0 = time.perf_counter()
            status, _ = await get_json(sessions[which], f"{bases[which]}{path}")
            times.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}")
        stats = summary(times)
        stats["under_target"] = stats["p99_ms"] < TARGET_P99_MS
        apis[name] = {"path": path, **stats}
        log(f"{name}: p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms")
    return apis


def table(result: dict[str, Any]) -> str:
    """The per-API table `make bench` prints: p99 and max while loading, then settled."""
    rows = [
        f"{'api':<18} {'loading p99':>11} {'max':>7} {'settled p50':>11} {'p99':>7} {'max':>7}"
        f"  p99 < {TARGET_P99_MS:g} ms"
    ]
    for name, api in result["settled"].items():
        loading = result["loading"][name]
        rows.append(
            f"{name:<18} {loading['p99_ms']:>11.1f} {loading['max_ms']:>7.1f} "
            f"{api['p50_ms']:>11.1f} {api['p99_ms']:>7.1f} {api['max_ms']:>7.1f}  "
            f"{'yes' if api['under_target'] else 'NO'}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--alerts", type=int, default=5_000)
    parser.add_argument("--timeout", type=float, default=300, help="setup deadline (s)")
    parser.add_argument("--keep", action="store_true", help="keep the topics")
    args = parser.parse_args(argv)

    result = with_two_workers(
        "bench-web",
        "bw",
        {"VIGIL_READ_TOKENS": TOKEN},
        lambda factory, bases: bench(args, factory, bases),
        keep=args.keep,
    )
    print(table(result), file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
