#!/usr/bin/env python3
"""Release-gate latency: `GET /gate/<service>` against two live workers; prints JSON.

    scripts/bench_gate.py [--requests 500] [--signals 400] [--services 20] [--keep]

Starts two Vigil workers on the local broker with their own app id and topic prefix (as the
integration tests do), waits until both own partitions, then feeds `--signals` risk signals
(findings, some in CISA KEV, firing and resolved incidents, CI runs, anomalies: the shapes
tables/risk/signals.py emits) straight into the risk stage's `risk_signals` topic, keyed by
service, for `--services` services (the four of docs/catalogue.example.yaml, then `svc-NN`).
Once the risk table holds every service, it times `--requests` sequential gate requests over
one keep-alive connection per worker, alternating the worker so that half are answered by
the owner of the service's risk partition and half forwarded to it (each answer is also an
`audit.append` on the control topic, as in production).

Output (stdout, one JSON object): overall p50/p90/p99/max/mean in ms, the same split into
`local` and `forwarded`, decision counts, and the setup. Topics are deleted afterwards unless
`--keep`; worker logs stay in var/bench-gate/<tag>/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import orjson  # noqa: E402

from app import kafka_io  # noqa: E402
from app.model.events import event_id  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.topics import entity_partition  # noqa: E402

TOKEN = "bench-gate-read-token"
CATALOGUE = REPO / "docs" / "catalogue.example.yaml"
KNOWN = ("payments", "checkout", "search", "auth")
MIN, HOUR = 60_000, 3_600_000


def log(message: str) -> None:
    print(f"[bench-gate {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 3),
        "p90_ms": round(percentile(values, 90), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(max(values), 3),
        "mean_ms": round(sum(values) / len(values), 3),
    }


def signals(services: list[str], count: int, now_ms: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` risk signals spread over `services`, times within the last two hours."""
    rnd = random.Random(seed)
    out = []
    for index in range(count):
        service = services[index % len(services)]
        t = now_ms - 2 * HOUR + rnd.randrange(0, 2 * HOUR - MIN)
        kind = rnd.choices(("finding", "incident", "ci", "anomaly"), (5, 2, 3, 1))[0]
        severity = rnd.choice(("low", "medium", "high", "critical"))
        details: dict[str, Any] = {}
        status = "open"
        entity = f"service:{service}"
        if kind == "finding":
            cve = f"CVE-2024-{rnd.randrange(1000, 99999)}"
            kev = rnd.random() < 0.05
            entity = f"image:registry.example.com/{service}"
            details = {"alertname": "Vulnerability", "vulnerability_id": cve, "kev": kev,
                       "artifact": f"registry.example.com/{service}:1.0.{index % 7}"}  # fmt: skip
            points = 99.75 if kev else round(rnd.uniform(0.05, 30), 4)
            key = f"fp-{service}-{cve}"
            status = "closed" if rnd.random() < 0.3 else "open"
        elif kind == "incident":
            details = {"alertname": rnd.choice(("Terminal shell in container", "Write below etc"))}
            points = round(rnd.uniform(20, 90), 4)
            key = f"fp-{service}-{details['alertname']}"
            status = "closed" if rnd.random() < 0.7 else "open"
        elif kind == "ci":
            ok = rnd.random() < 0.8
            entity = f"repo:acme/{service}"
            run = rnd.randrange(10**6)
            details = {"provider": "github", "workflow": "CI", "branch": "main",
                       "commit_sha": f"{rnd.getrandbits(160):040x}", "run_id": run,
                       "run_key": f"{entity}|run|{run}|1", "name": f"{entity}|CI|"}  # fmt: skip
            points = 0.0 if ok else 30.0
            key = f"{entity}|ci_run|CI||main"
            status = "closed" if ok else "open"
            severity = "info" if ok else "medium"
        else:
            details = {"name": "http_error_ratio", "series": f"{service}|http_error_ratio"}
            points = round(rnd.uniform(20, 70), 4)
            key = details["series"]
            status = "transient"
        out.append(
            {
                "id": event_id("bench_gate", service, kind, key, status, t, index),
                "service": service,
                "entity_type": "service",
                "entity": entity,
                "kind": kind,
                "key": key,
                "status": status,
                "points_input": points,
                "severity": severity,
                "time_ms": t,
                "details": details,
                "criticality": None,
                "exposure": None,
            }
        )
    out.sort(key=lambda s: (s["time_ms"], s["id"]))
    return out


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        return response.status, await response.json(content_type=None)


async def wait_for(what: str, predicate, timeout_s: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            result = await predicate()
            if result:
                return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


async def bench(args: argparse.Namespace, factory: Any, bases: list[str]) -> dict[str, Any]:
    settings = factory.settings
    signals_topic = factory.topic("risk_signals")
    timeout = aiohttp.ClientTimeout(total=30)
    sessions = [aiohttp.ClientSession(timeout=timeout) for _ in bases]
    try:
        started = time.monotonic()

        async def assigned():
            views = [
                (await get_json(s, f"{b}/api/pipeline"))[1]
                for s, b in zip(sessions, bases, strict=True)
            ]
            if any(v.get("rebalancing") for v in views):
                return None
            parts = [v["event_partitions"] for v in views]
            owned = sorted(p for ps in parts for p in ps)
            return views if all(parts) and owned == list(range(settings.partitions)) else None

        views = await wait_for("both workers to own partitions", assigned, args.timeout)
        log(f"workers ready in {time.monotonic() - started:.1f} s")
        owner = {}
        for view, base in zip(views, bases, strict=True):
            for entry in view["assignment"]:
                topic, _, partition = entry.rpartition(":")
                if topic == signals_topic:
                    owner[int(partition)] = base
        extra = [f"svc-{i:02d}" for i in range(max(0, args.services - len(KNOWN)))]
        services = [*KNOWN, *extra][: args.services]
        batch = signals(services, args.signals, int(time.time() * 1000))
        await kafka_io.produce(
            factory.bootstrap,
            ((signals_topic, s["service"].encode(), orjson.dumps(s)) for s in batch),
        )
        log(f"produced {len(batch)} signals for {len(services)} services")

        async def all_scored():
            status, body = await get_json(sessions[0], f"{bases[0]}/api/tables/risk?limit=500")
            keys = {row["key"] for row in body["items"]} if status == 200 else set()
            return set(services) <= keys

        await wait_for("the risk table to hold every service", all_scored, args.timeout)
        for i in range(20):  # warm-up: connections, routing metadata
            await get_json(sessions[i % 2], f"{bases[i % 2]}/gate/{services[i % len(services)]}")

        times: dict[str, list[float]] = {"local": [], "forwarded": []}
        decisions: Counter[str] = Counter()
        for i in range(args.requests):
            service = services[i % len(services)]
            which = (i + i // len(services)) % 2
            base = bases[which]
            t0 = time.perf_counter()
            status, answer = await get_json(sessions[which], f"{base}/gate/{service}")
            elapsed = (time.perf_counter() - t0) * 1000
            if status != 200:
                raise RuntimeError(f"gate answered {status}: {answer}")
            decisions[answer["decision"]] += 1
            partition = entity_partition(service, settings.partitions)
            times["local" if owner.get(partition) == base else "forwarded"].append(elapsed)
        every = times["local"] + times["forwarded"]
        return {
            "benchmark": "gate_latency",
            "requests": args.requests,
            "signals": len(batch),
            "services": len(services),
            "workers": len(bases),
            "partitions": settings.partitions,
            **{k: v for k, v in summary(every).items() if k != "n"},
            "local": summary(times["local"]),
            "forwarded": summary(times["forwarded"]),
            "decisions": dict(sorted(decisions.items())),
        }
    finally:
        for session in sessions:
            await session.close()


def with_two_workers(
    name: str,
    prefix: str,
    env: dict[str, str],
    run: Callable[[Any, list[str]], Awaitable[dict[str, Any]]],
    keep: bool = False,
) -> dict[str, Any]:
    """Start two workers with their own app id (`vigil-<name>-<tag>`), topics (`<prefix><tag>.`)
    and `env`, return `run(factory, their base URLs)`, then stop them and (unless `keep`)
    delete their topics."""
    from tests.integration.harness import WorkerFactory

    tag = uuid.uuid4().hex[:8]
    bootstrap = Settings.from_env().bootstrap_servers
    workdir = REPO / "var" / name / tag
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"VIGIL_APP_ID": f"vigil-{name}-{tag}", "VIGIL_TOPIC_PREFIX": f"{prefix}{tag}.", **env}
    factory = WorkerFactory(bootstrap, env, workdir)
    try:
        workers = [factory.start("w1"), factory.start("w2")]
        return asyncio.run(run(factory, [f"http://127.0.0.1:{w.web_port}" for w in workers]))
    finally:
        factory.stop_all()
        if not keep:
            asyncio.run(
                kafka_io.delete_topics_with_prefix(
                    bootstrap, [env["VIGIL_TOPIC_PREFIX"], env["VIGIL_APP_ID"]]
                )
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--signals", type=int, default=400)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120, help="setup deadline (s)")
    parser.add_argument("--keep", action="store_true", help="keep the topics")
    args = parser.parse_args(argv)

    result = with_two_workers(
        "bench-gate",
        "bg",
        {"VIGIL_CATALOGUE": str(CATALOGUE), "VIGIL_READ_TOKENS": TOKEN},
        lambda factory, bases: bench(args, factory, bases),
        keep=args.keep,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
