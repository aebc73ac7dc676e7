"""`scripts/chaos.py recovery`: how long a worker with an empty data dir takes to restore a
table of N small keys from its changelog, and a restart on the kept data dir (see
scripts/chaos.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from chaos_kafka import isolated_workers, log

from app import kafka_io
from app.topics import entity_partition


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def entity_value(index: int, partition: int) -> bytes:
    """A small entity-stats value shaped like the process agent's (~250 bytes), marked with
    the partition that wrote it (app/runtime/staged.py `owner`)."""
    n = 1 + index % 7
    ts = 1_767_225_600_000 + index
    return orjson.dumps(
        {
            "entity": f"svc-{index:07d}",
            "events": n,
            "by_type": {"metric": n},
            "by_source": {"metrics": n},
            "by_severity": {"info": n},
            "first_ts_ms": ts,
            "last_ts_ms": ts,
            "max_severity": "info",
            "p": partition,
        }
    )


async def produce_changelog(bootstrap: str, topic: str, keys: int, partitions: int) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    try:
        pending = []
        for i in range(keys):
            key = f"svc-{i:07d}"  # the same entity as in entity_value(i)
            partition = entity_partition(key, partitions)
            pending.append(
                await producer.send(
                    topic,
                    entity_value(i, partition),
                    key=orjson.dumps(key),  # Faust writes changelog keys as JSON strings
                    partition=partition,
                )
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def wait_ready(worker: Any, timeout: float) -> dict[str, float | None]:
    """Seconds from now until /health/ready is 200 after recovery (the log says `Recovery
    complete` or `Worker ready`), plus when the log shows recovery start and end."""
    url = f"http://127.0.0.1:{worker.web_port}/health/ready"
    t0 = time.monotonic()
    marks: dict[str, float | None] = {"first_200": None, "first_503": None, "ready": None}
    while time.monotonic() - t0 < timeout:
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited:\n{worker.log_tail()}")
        status = http_status(url)
        now = time.monotonic() - t0
        if status == 503 and marks["first_503"] is None:
            marks["first_503"] = now
        if status == 200 and marks["first_200"] is None:
            marks["first_200"] = now
        text = worker.log_path.read_text(errors="replace")
        recovered = "Recovery complete" in text or "Worker ready" in text
        if status == 200 and recovered:
            marks["ready"] = now
            break
        time.sleep(0.2)
    text = worker.log_path.read_text(errors="replace")
    marks.update(_log_marks(text))
    return marks


def _log_marks(text: str) -> dict[str, float | None]:
    """Seconds between log lines: restoring started, changelogs read."""
    stamps = {}
    for line in text.splitlines():
        match = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]", line)
        if not match:
            continue
        ts = (
            time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
            + int(match.group(2)) / 1000
        )
        stamps.setdefault("first_line", ts)
        for needle, name in (
            ("Restoring state from changelog topics", "restore_start"),
            ("Done reading from changelog topics", "restore_end"),
            ("Recovery complete", "recovery_complete"),
        ):
            if needle in line:
                stamps[name] = ts
    restore = None
    if "restore_start" in stamps and "restore_end" in stamps:
        restore = round(stamps["restore_end"] - stamps["restore_start"], 1)
    return {"log_restore_s": restore}


async def run_recovery(args: argparse.Namespace) -> int:
    """The `recovery` subcommand: 0 when the cold start became ready, else 1."""
    async with isolated_workers("recovery-", args.guarantee, args.keep) as (tag, factory):
        result: dict[str, Any] = {"tag": tag, "keys": args.keys}
        bootstrap, settings = factory.bootstrap, factory.settings
        changelog = f"{settings.app_id}-entity-stats-changelog"
        first = factory.start("creator")
        marks = await asyncio.to_thread(wait_ready, first, 120)
        log(f"first worker ready in {marks['ready']:.1f} s (empty tables); stopping it")
        await asyncio.to_thread(first.stop)
        t0 = time.monotonic()
        await produce_changelog(bootstrap, changelog, args.keys, settings.partitions)
        result["produce_s"] = round(time.monotonic() - t0, 1)
        ends = await kafka_io.end_offsets(bootstrap, [changelog])
        log(f"{sum(ends.values())} records on {changelog} ({result['produce_s']} s to produce)")

        datadir = str(factory.tmp_path / "data-restored")
        for label in ("cold", "warm"):
            # cold: an empty data dir restores everything; warm: the same dir again (RocksDB
            # kept its data and changelog offsets) restores nothing.
            worker = factory.start(label, APP_DATADIR=datadir)
            marks = await asyncio.to_thread(wait_ready, worker, args.ready_timeout)
            result[label] = marks
            log(
                f"{label} start: /health/ready 200 after {marks['ready']} s "
                f"(first 503 at {marks['first_503']}, first 200 at {marks['first_200']}, "
                f"restore per log {marks['log_restore_s']} s)"
            )
            await asyncio.to_thread(worker.stop)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if result.get("cold", {}).get("ready") is not None else 1
