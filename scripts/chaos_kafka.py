"""The chaos runs' Kafka plumbing: workers on an isolated app id and topic prefix (topics
deleted afterwards), creating topics, producing a raw plan at its planned offsets, reading
every output topic into a Tally, and a consumer group's lag."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import orjson
from chaos_check import RawPlan, Tally, wall_clock

from app import kafka_io
from app.runtime.partition_clock import is_tick
from app.settings import REPO_ROOT, Settings


def log(message: str) -> None:
    """A progress line on stderr."""
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bootstrap_servers() -> str:
    return Settings.from_env().bootstrap_servers


def isolated_env(tag: str, guarantee: str) -> dict[str, str]:
    """The settings that keep a run's app id and topics apart from any other's."""
    return {
        "VIGIL_APP_ID": f"vigil-chaos-{tag}",
        "VIGIL_TOPIC_PREFIX": f"chaos{tag}.",
        "PROCESSING_GUARANTEE": guarantee,
    }


@contextlib.asynccontextmanager
async def isolated_workers(
    name: str, guarantee: str, keep: bool, **extra_env: str
) -> AsyncIterator[tuple[str, Any]]:
    """(tag, WorkerFactory) of a run with its own app id and topic prefix; worker logs and data
    under var/chaos/<name><tag>/. Afterwards every worker is stopped and, unless `keep`, the
    run's topics are deleted."""
    from tests.integration.harness import WorkerFactory

    tag = uuid.uuid4().hex[:8]
    bootstrap = bootstrap_servers()
    workdir = REPO_ROOT / "var" / "chaos" / f"{name}{tag}"
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**isolated_env(tag, guarantee), **extra_env}
    factory = WorkerFactory(bootstrap, env, workdir)
    try:
        yield tag, factory
    finally:
        factory.stop_all()
        if not keep:
            await kafka_io.delete_topics_with_prefix(
                bootstrap, [env["VIGIL_TOPIC_PREFIX"], env["VIGIL_APP_ID"]]
            )


async def create_topics(bootstrap: str, specs: Iterable[tuple[str, int]], replicas: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, p, replicas) for n, p in dict(specs).items() if n not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    finally:
        await admin.close()


async def produce_plan(bootstrap: str, plan: list[RawPlan]) -> None:
    """Produce every record in order (idempotent producer: no reordering on retries)."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        enable_idempotence=True,
        acks="all",
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    try:
        pending = []
        for rec in plan:
            fut = await producer.send(
                rec.topic, rec.value, key=rec.key, partition=rec.partition, timestamp_ms=rec.ts_ms
            )
            pending.append((rec, fut))
            if len(pending) >= 2000:
                await _check_offsets(pending)
        await _check_offsets(pending)
    finally:
        await producer.stop()


async def _check_offsets(pending: list) -> None:
    for rec, fut in pending:
        meta = await fut
        if (meta.partition, meta.offset) != (rec.partition, rec.offset):
            raise RuntimeError(
                f"{rec.topic} record landed at {meta.partition}/{meta.offset}, planned "
                f"{rec.partition}/{rec.offset}: the topic was not fresh"
            )
    pending.clear()


class Collector:
    """Reads every downstream topic from the beginning, continuously, into a Tally."""

    def __init__(
        self, bootstrap: str, names: Mapping[str, str], tally: Tally, isolation: str
    ) -> None:
        self.bootstrap = bootstrap
        self.names = dict(names)  # Kafka name -> logical
        self.tally = tally
        self.isolation = isolation
        self.last_record_at = time.monotonic()
        self.first_event_at: float | None = None
        self.events_seen = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            isolation_level=self.isolation,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
        )
        await self.consumer.start()
        tps = []
        for name in self.names:
            for p in sorted(await kafka_io.partitions_of(self.consumer, name)):
                tps.append(TopicPartition(name, p))
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            batches = await self.consumer.getmany(timeout_ms=300, max_records=5000)
            for tp, messages in batches.items():
                logical = self.names[tp.topic]
                for message in messages:
                    try:
                        value = orjson.loads(message.value) if message.value else None
                    except orjson.JSONDecodeError:
                        value = None
                    if is_tick(value) or wall_clock(logical, value):
                        continue  # clock ticks and `clock` heartbeats: not outputs
                    self.last_record_at = time.monotonic()
                    self.tally.receive(logical, value)
                    if logical == "events":
                        self.events_seen += 1
                        if self.first_event_at is None:
                            self.first_event_at = time.monotonic()
            await asyncio.sleep(0)

    async def drain(self, timeout_s: float = 30) -> None:
        """Wait until the consumer position reached the end of every partition."""
        deadline = time.monotonic() + timeout_s
        tps = list(self.consumer.assignment())
        while time.monotonic() < deadline:
            ends = await self.consumer.end_offsets(tps)  # the LSO under read_committed
            positions = [await self.consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                return
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self.consumer.stop()


async def group_lag(bootstrap: str, group: str, topics: Iterable[str]) -> dict[str, int]:
    """Per input topic: end offset minus the group's committed offset, summed over partitions."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    ends = await kafka_io.end_offsets(bootstrap, topics)
    lag: Counter = Counter()
    for tp, end in ends.items():
        meta = committed.get(tp)
        lag[tp.topic] += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
    return dict(lag)
