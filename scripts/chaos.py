#!/usr/bin/env python3
"""Crash-safety chaos run and table-recovery timing for Vigil (`make chaos`).

    scripts/chaos.py [run] [--count 100000] [--kill-at 0.25,0.5,0.75] [--guarantee G]
    scripts/chaos.py recovery [--keys 1000000]
    scripts/chaos.py order [--count 20000] [--batch 500]

`run` (the default) generates a mixed stream with `vigil generate`'s generator (fixed seed,
20 records/s of event time, so windows close and alert timers fire), computes every output the
offline pipeline derives from it (the spec: `app.replay.offline_replay`'s algorithm with
`flush=False`, fed the records with the exact Kafka coordinates a worker will see), produces the
stream to an isolated topic prefix (each family under one constant key, as `vigil replay` does,
so one source's records stay in one raw partition and in event-time order), runs a worker,
SIGKILLs it each time `vigil.events` holds the given shares of the expected events and restarts
it on the same data dir, waits until every output arrived, then prints one row per downstream
topic. It exits 1 when, on a topic whose records depend only on each source's own order, an
expected id is lost, an id arrives with another value or that the spec does not emit, or
repeats of one id differ; every topic is judged so (ORDER_DEPENDENT, the topics once judged on
coarse keys only, is empty). `--kill-at ''` is a crash-free run, which must match the spec
too.

Under `--guarantee exactly_once` (Faust's PROCESSING_GUARANTEE) the outputs are read with
`isolation_level=read_committed`, as a transactional pipeline's consumers must; a second table
shows what a `read_uncommitted` consumer sees.

`recovery` times how long a worker with an empty data dir takes to restore a table of N small
keys from its changelog: a first worker creates the tables' changelog topics, N entity-stats
records are produced straight into `<app id>-entity-stats-changelog` in Faust's format (JSON
string key, orjson value, in the key's partition), then a fresh worker is started and timed
until `/health/ready` answers 200 after recovery; a restart on the kept data dir is timed too.

`order` (no Kafka) processes the same events in event-time order and in the order a worker
reading a backlog sees them (`--batch` records of one raw topic, then of the next) and prints
the output counts of both: what the order-dependent topics depend on.

Topics are deleted afterwards (`--keep` keeps them); worker logs stay in var/chaos/<tag>/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from app import kafka_io  # noqa: E402
from app.events import Event  # noqa: E402
from app.outputs import Origin  # noqa: E402
from app.pipeline import Pipeline, PipelineState  # noqa: E402
from app.replay import OfflineRisk, replay_events  # noqa: E402
from app.runtime.partition_clock import is_tick  # noqa: E402
from app.runtime.risk_clock import RiskClock  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.topics import OUTPUT_STREAMS, TopicCatalog, entity_partition  # noqa: E402

#: Output streams a chaos run does not check: `control` is an input.
NOT_CHECKED = frozenset({"control"})


def wall_clock(topic: str, value: Any) -> bool:
    """A record whose value follows when a worker's clock ticked (a `clock` heartbeat on
    `risk_signals`, tables/risk/signals.py), so no two runs agree on it: not compared."""
    return topic == "risk_signals" and isinstance(value, dict) and value.get("kind") == "clock"


def _alert_key(value: Mapping[str, Any]) -> Any:
    return (value.get("fingerprint"), value.get("status"))


def _signal_key(value: Mapping[str, Any]) -> Any:
    if value.get("kind") == "tick":  # heartbeats follow the clock's steps: not compared
        return None
    return (value.get("kind"), value.get("service"), value.get("key"), value.get("status"))


def _risk_key(value: Mapping[str, Any]) -> Any:
    return value.get("entity")


def _scorecard_key(value: Mapping[str, Any]) -> Any:
    return value.get("id")


def _drift_key(value: Mapping[str, Any]) -> Any:
    return (value.get("resource"), value.get("status"))


def _posture_key(value: Mapping[str, Any]) -> Any:
    return (value.get("key"), value.get("status"))


#: Streams whose records would depend on how the raw topics interleave, not only on each
#: source's own order: none any more. Alert timers and risk heartbeats run on the partition
#: clock, the lowest watermark of the sources still sending (app/runtime/partition_clock.py); drift
#: and compliance apply each entity's events in event-time order as that clock passes them
#: (app/runtime/held.py); the risk stage runs on the lowest clock of the `vigil.events` partitions
#: (app/runtime/risk_clock.py). A topic listed here is reported by id and by a coarse key and fails
#: a run only with `--strict`, on coarse keys never received (`Tally(coarse=...)` takes another
#: mapping).
ORDER_DEPENDENT: dict[str, Any] = {}

#: Coarse keys of the topics the rebalance test in CI judges loosely (its workers' clocks see
#: the pauses a rebalance makes; `make chaos` judges all of them exactly): alerts by
#: fingerprint and status, risk signals by kind, service, key and status, risk by entity,
#: scorecards by id, drift by resource and status, posture by key and status.
NEARLY_EXACT: dict[str, Any] = {
    "alerts": _alert_key,
    "risk_signals": _signal_key,
    "risk": _risk_key,
    "scorecards": _scorecard_key,
    "drift": _drift_key,
    "posture": _posture_key,
}

# --------------------------------------------------------------------------------------------
# Comparison: expected outputs vs what arrived, per topic, by id.
# --------------------------------------------------------------------------------------------


def canonical(value: Any) -> bytes:
    """A value's canonical JSON bytes (sorted keys): equal values, equal bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


@dataclass
class TopicTally:
    """Expected and received records of one topic, by output id (and by coarse key when the
    topic is order-dependent)."""

    #: id -> how many times the spec emits it (a few ids legitimately repeat: identical records)
    expected: Counter = field(default_factory=Counter)
    #: id -> digests of the canonical values the spec gives it (one, in practice)
    expected_values: dict[str, set[bytes]] = field(default_factory=dict)
    #: id -> the first canonical value the spec gives it (for mismatch reports)
    expected_bodies: dict[str, bytes] = field(default_factory=dict)
    received: Counter = field(default_factory=Counter)
    #: id -> digests of the distinct canonical values received for it, first-seen first
    received_values: dict[str, list[bytes]] = field(default_factory=dict)
    no_id: int = 0
    #: (id, expected value, received value) of the first mismatches
    examples: list[tuple[str, Any, Any]] = field(default_factory=list)
    #: value -> coarse key, for order-dependent topics
    coarse: Any = None
    expected_keys: set = field(default_factory=set)
    received_keys: set = field(default_factory=set)

    def expect(self, value: Mapping[str, Any]) -> None:
        if self.coarse is not None and (key := self.coarse(value)) is not None:
            self.expected_keys.add(key)
        ident = value.get("id")
        if ident is None:
            self.no_id += 1
            return
        self.expected[ident] += 1
        body = canonical(value)
        self.expected_values.setdefault(ident, set()).add(_digest(body))
        self.expected_bodies.setdefault(ident, body)

    def receive(self, value: Any) -> None:
        ident = value.get("id") if isinstance(value, dict) else None
        if ident is None:
            self.no_id += 1
            return
        if self.coarse is not None and (key := self.coarse(value)) is not None:
            self.received_keys.add(key)
        self.received[ident] += 1
        body = canonical(value)
        digest = _digest(body)
        seen = self.received_values.setdefault(ident, [])
        if digest not in seen:
            seen.append(digest)
            wanted = self.expected_values.get(ident)
            if wanted is not None and digest not in wanted and len(self.examples) < 3:
                self.examples.append((ident, orjson.loads(self.expected_bodies[ident]), value))

    def row(self) -> dict[str, Any]:
        """The counts reported for the topic (see LEGEND for their meaning)."""
        expected_ids = set(self.expected)
        received_ids = set(self.received)
        duplicated = sum(
            max(0, n - max(self.expected.get(i, 0), 1)) for i, n in self.received.items()
        )
        mismatched = sum(
            1
            for i in received_ids & expected_ids
            if any(v not in self.expected_values[i] for v in self.received_values[i])
        )
        conflicting = sum(
            max(0, len(v) - max(len(self.expected_values.get(i, ())), 1))
            for i, v in self.received_values.items()
        )
        return {
            "expected": sum(self.expected.values()),
            "expected_ids": len(expected_ids),
            "received": sum(self.received.values()),
            "distinct": len(received_ids),
            "lost": len(expected_ids - received_ids),
            "duplicated": duplicated,
            "dup_after_dedup": conflicting,
            "mismatched": mismatched,
            "unexpected": len(received_ids - expected_ids),
            "no_id": self.no_id,
            "order_dependent": self.coarse is not None,
            "keys_lost": len(self.expected_keys - self.received_keys)
            if self.coarse is not None
            else None,
        }

    def complete(self) -> bool:
        """Every expected id arrived (order-dependent topics: always true, see ORDER_DEPENDENT)."""
        if self.coarse is not None:
            return True
        return all(i in self.received for i in self.expected)


class Tally:
    """Per logical topic tallies; order-dependent topics get their coarse key."""

    def __init__(self, topics: Iterable[str], coarse: Mapping[str, Any] | None = None) -> None:
        self.coarse = ORDER_DEPENDENT if coarse is None else coarse
        self.topics: dict[str, TopicTally] = {}
        for topic in topics:
            self._topic(topic)

    def _topic(self, topic: str) -> TopicTally:
        tally = self.topics.get(topic)
        if tally is None:
            tally = self.topics[topic] = TopicTally(coarse=self.coarse.get(topic))
        return tally

    def expect(self, topic: str, value: Mapping[str, Any]) -> None:
        if not wall_clock(topic, value):
            self._topic(topic).expect(value)

    def receive(self, topic: str, value: Any) -> None:
        if not wall_clock(topic, value):
            self._topic(topic).receive(value)

    def rows(self) -> dict[str, dict[str, Any]]:
        return {t: tally.row() for t, tally in self.topics.items()}

    def complete(self) -> bool:
        return all(t.complete() for t in self.topics.values())

    def sharing_spec(self) -> Tally:
        """A new Tally with this one's expectations and no receipts."""
        other = Tally((), self.coarse)
        for name, topic in self.topics.items():
            other.topics[name] = TopicTally(
                expected=topic.expected,
                expected_values=topic.expected_values,
                expected_bodies=topic.expected_bodies,
                coarse=topic.coarse,
                expected_keys=topic.expected_keys,
            )
        return other


def compare(
    expected: Iterable[tuple[str, Mapping[str, Any]]],
    received: Iterable[tuple[str, Any]],
    topics: Iterable[str] = (),
    coarse: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Count lost, duplicated and mismatched records per topic from `(topic, value)` pairs."""
    tally = Tally(topics, coarse)
    for topic, value in expected:
        tally.expect(topic, value)
    for topic, value in received:
        tally.receive(topic, value)
    return tally.rows()


def failures(rows: Mapping[str, Mapping[str, Any]], strict: bool = False) -> list[str]:
    """What fails a run. Exact topics: lost, mismatched or unexpected ids, or repeats of an id
    that differ. Order-dependent topics, only when `strict`: a coarse key the spec emits that
    never arrived."""
    bad = []
    for topic, row in rows.items():
        if row.get("order_dependent"):
            columns: tuple[str, ...] = ("keys_lost",) if strict else ()
        else:
            columns = EXACT_FAILURES
        for column in columns:
            if row[column]:
                bad.append(f"{topic}: {row[column]} {column}")
    return bad


EXACT_FAILURES = ("lost", "mismatched", "unexpected", "dup_after_dedup")

COLUMNS = (
    ("expected", "expected"),
    ("received", "received"),
    ("distinct", "distinct ids"),
    ("lost", "lost"),
    ("duplicated", "dup"),
    ("dup_after_dedup", "dup after dedup"),
    ("mismatched", "mismatched"),
    ("unexpected", "unexpected"),
    ("keys_lost", "keys lost*"),
)


def format_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """The per-topic table as text (order-dependent topics marked `*`)."""
    head = ["topic", *(title for _, title in COLUMNS)]
    lines = [head]
    total: Counter = Counter()
    for topic, row in rows.items():
        name = topic + ("*" if row.get("order_dependent") else "")
        cells = ["-" if row[c] is None else str(row[c]) for c, _ in COLUMNS]
        lines.append([name, *cells])
        total.update({c: row[c] or 0 for c, _ in COLUMNS})
    lines.append(["TOTAL", *(str(total[c]) for c, _ in COLUMNS)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(line)
            )
        )
        if n == 0 or n == len(lines) - 2:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


LEGEND = """\
expected: records the offline pipeline (the spec) emits; received: records on the topic;
distinct ids; lost: expected ids never received; dup: copies beyond the expected count
(at-least-once repeats); dup after dedup: copies of an id whose value differs from its first
copy, i.e. what is left after a consumer deduplicates by id (0 = every repeat was identical);
mismatched: ids received with a value the spec does not give them; unexpected: ids the spec
does not emit. * order-dependent topic (see ORDER_DEPENDENT in scripts/chaos.py): its records
follow how the raw topics interleave, so a crash-free run differs from the spec too; reported,
with `keys lost` (a coarse key, e.g. alert fingerprint and status, the spec emits and that never
arrived), and judged only with --strict."""


# --------------------------------------------------------------------------------------------
# The stream: generated records, their raw-topic coordinates, and the spec's outputs.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawPlan:
    """One raw record as it will sit in Kafka: topic, key, partition, offset, timestamp."""

    family: str
    topic: str
    key: bytes
    partition: int
    offset: int
    ts_ms: int
    value: bytes


def family_key(family: str) -> bytes:
    """The constant key a family's records are produced with (one raw partition, in order)."""
    return f"chaos-{family}".encode()


def raw_plan(records: Iterable[Any], catalog: TopicCatalog, partitions: int) -> list[RawPlan]:
    """Where each generated record lands: its family's topic, its key's partition, the next
    offset there (topics are fresh), its event time as the Kafka timestamp."""
    offsets: Counter = Counter()
    plan = []
    for record in records:
        key = family_key(record.family)
        topic = catalog.raw(record.family)
        partition = entity_partition(key.decode(), partitions)
        plan.append(
            RawPlan(
                record.family,
                topic,
                key,
                partition,
                offsets[topic],
                record.ts_ms,
                record.value,
            )
        )
        offsets[topic] += 1
    return plan


def kafka_origin(rec: RawPlan) -> Origin:
    """The Origin the ingest agent builds from this record's Kafka message. Faust hands it
    `message.timestamp` in seconds (ms / 1000.0) and ingest multiplies back: the same
    arithmetic here, so a rounding error would show on both sides."""
    return Origin(rec.topic, rec.partition, rec.offset, int((rec.ts_ms / 1000.0) * 1000))


def expected_outputs(plan: Iterable[RawPlan], settings: Settings) -> Iterator[tuple[str, dict]]:
    """`(logical topic, value)` of every output the spec emits for the planned records.

    `offline_replay(..., flush=False)` fed records instead of files: each record is ingested
    with the Origin the ingest agent will build from its Kafka message (topic, partition,
    offset, and the broker timestamp as Faust converts it), so dead-letter ids, `origin`
    fields and Kafka-time events come out as a worker writes them; then the events go through
    the stateful logic as `app.replay.replay_events` runs it (event-time order, each in its
    entity's `vigil.events` partition). Windows still open at the end stay open, as on a
    worker.
    """
    ingest = Pipeline(settings)
    events = []
    for rec in plan:
        for out in ingest.ingest(rec.value, rec.family, kafka_origin(rec)):
            if out.topic == "events":
                events.append(out)
            else:
                yield out.topic, out.value
    logical = {spec.name: spec.logical for spec in TopicCatalog(settings).specs()}
    for record in replay_events(events, settings, ingest.catalogue, flush=False):
        yield logical.get(record["topic"], record["topic"]), record["value"]


def generate(seed: int, start_ms: int, rate: float, count: int) -> list[Any]:
    """The generated records (`vigil generate`'s generator, deterministic per seed)."""
    from app.generator.stream import TelemetryGenerator

    return list(TelemetryGenerator(seed=seed).records(start_ms, rate, count))


# --------------------------------------------------------------------------------------------
# Kafka plumbing
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# `run`
# --------------------------------------------------------------------------------------------


def bootstrap_servers() -> str:
    return Settings.from_env().bootstrap_servers


def isolated_env(tag: str, guarantee: str) -> dict[str, str]:
    return {
        "VIGIL_APP_ID": f"vigil-chaos-{tag}",
        "VIGIL_TOPIC_PREFIX": f"chaos{tag}.",
        "PROCESSING_GUARANTEE": guarantee,
    }


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run_chaos(args: argparse.Namespace) -> int:
    from tests.integration.harness import WorkerFactory

    tag = uuid.uuid4().hex[:8]
    bootstrap = bootstrap_servers()
    workdir = REPO / "var" / "chaos" / tag
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**isolated_env(tag, args.guarantee), "VIGIL_ALIGN_DRIFT_MS": "60000"}  # as measured
    factory = WorkerFactory(bootstrap, env, workdir)
    collectors: list[Collector] = []
    try:
        return await _chaos(args, tag, bootstrap, factory, collectors)
    finally:
        for collector in collectors:
            with contextlib.suppress(Exception):
                await collector.stop()
        factory.stop_all()
        if not args.keep:
            await kafka_io.delete_topics_with_prefix(
                bootstrap, [env["VIGIL_TOPIC_PREFIX"], env["VIGIL_APP_ID"]]
            )


async def _chaos(
    args: argparse.Namespace,
    tag: str,
    bootstrap: str,
    factory: Any,
    collectors: list[Collector],
) -> int:
    settings, catalog = factory.settings, factory.catalog
    streams = [s for s in OUTPUT_STREAMS if s not in NOT_CHECKED]
    start_ms = args.start_ms if args.start_ms is not None else _recent_start_ms(args)

    log(f"tag {tag}: generating {args.count} records (seed {args.seed}, {args.rate}/s)")
    records = generate(args.seed, start_ms, args.rate, args.count)
    plan = raw_plan(records, catalog, settings.partitions)
    started = time.monotonic()
    spec = Tally(streams)
    for topic, value in expected_outputs(plan, settings):
        spec.expect(topic, value)
    expected_events = sum(spec.topics["events"].expected.values())
    log(
        f"spec: {sum(sum(t.expected.values()) for t in spec.topics.values())} outputs, "
        f"{expected_events} events ({time.monotonic() - started:.0f} s)"
    )

    families = sorted({r.family for r in plan})
    specs = [(catalog.raw(f), settings.partitions) for f in families]
    specs += [(catalog.name(s), catalog.partitions(s)) for s in OUTPUT_STREAMS]
    await create_topics(bootstrap, specs, settings.replicas)
    await produce_plan(bootstrap, plan)
    log(f"produced {len(plan)} raw records to {len(families)} topics")

    names = {catalog.name(s): s for s in streams}
    isolations = ["read_committed"]
    if args.guarantee == "exactly_once" and not args.no_uncommitted:
        isolations.append("read_uncommitted")
    tallies = {}
    for isolation in isolations:
        tally = tallies[isolation] = spec.sharing_spec()
        collector = Collector(bootstrap, names, tally, isolation)
        await collector.start()
        collectors.append(collector)
    main = collectors[0]

    kill_at = [int(float(f) * expected_events) for f in args.kill_at.split(",") if f.strip()]
    events_topic = catalog.name("events")
    incarnation = 0
    worker = factory.start("w1")
    datadir = worker.env["APP_DATADIR"]
    t_start = time.monotonic()
    log(f"worker started (pid {worker.process.pid}, {args.guarantee}); kills at {kill_at}")
    kills: list[dict[str, Any]] = []
    self_exits = 0
    complete_at = None
    deadline = t_start + args.timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        if worker.process.poll() is not None:  # died on its own: restart, as a supervisor would
            self_exits += 1
            log(f"worker exited by itself ({worker.process.returncode}); restarting")
            log("  " + worker.log_tail(8).replace("\n", "\n  "))
            incarnation += 1
            worker = factory.start(f"w1-{incarnation}", APP_DATADIR=datadir)
            continue
        if kill_at:
            on_events = sum((await kafka_io.end_offsets(bootstrap, [events_topic])).values())
            if on_events >= kill_at[0]:
                worker.kill()
                kills.append(
                    {
                        "at_events": on_events,
                        "target": kill_at.pop(0),
                        "elapsed_s": round(time.monotonic() - t_start, 1),
                    }
                )
                log(f"SIGKILL with {on_events} records on {events_topic}")
                incarnation += 1
                worker = factory.start(f"w1-{incarnation}", APP_DATADIR=datadir)
            continue
        if complete_at is None and main.tally.complete():
            complete_at = time.monotonic()
            log(f"every expected output arrived ({complete_at - t_start:.0f} s after start)")
        quiet = time.monotonic() - main.last_record_at
        if complete_at is not None and quiet >= args.settle:
            break
        if complete_at is None and quiet >= args.stall:
            log(f"no new output for {args.stall:.0f} s and outputs incomplete: giving up")
            break
    else:
        log("timeout")
    for collector in collectors:
        await collector.drain()
    inputs = [catalog.raw(f) for f in families] + [events_topic]
    try:
        lag = await group_lag(bootstrap, settings.app_id, inputs)
    except Exception as exc:
        lag = {"error": repr(exc)}
    end = complete_at or time.monotonic()
    elapsed = end - t_start
    from_first = end - (main.first_event_at or t_start)
    result: dict[str, Any] = {
        "tag": tag,
        "guarantee": args.guarantee,
        "seed": args.seed,
        "start_ms": start_ms,
        "rate": args.rate,
        "raw_records": len(plan),
        "expected_events": expected_events,
        "kills": kills,
        "self_exits": self_exits,
        "complete": complete_at is not None,
        "seconds_to_complete": round(elapsed, 1),
        "raw_records_per_s": round(len(plan) / from_first, 1) if from_first > 0 else None,
        "group_lag": lag,
        "tables": {},
    }
    for isolation, tally in tallies.items():
        rows = tally.rows()
        result["tables"][isolation] = rows
        print(f"\n== {args.guarantee}, consumer isolation {isolation}, {len(kills)} kills ==")
        print(format_table(rows))
        for topic, t in tally.topics.items():
            if t.coarse is not None:
                lost = sorted(map(str, t.expected_keys - t.received_keys))
                if lost:
                    print(f"  {topic} keys lost ({len(lost)}): {', '.join(lost[:3])[:300]}")
                continue
            for ident, want, got in t.examples[:2]:
                print(describe_mismatch(topic, ident, want, got))
    print("\n" + LEGEND)
    print(
        f"\nraw records {len(plan)}, expected events {expected_events}, kills {len(kills)}, "
        f"self-exits {self_exits}, complete={complete_at is not None} after {elapsed:.0f} s, "
        f"{result['raw_records_per_s']} raw records/s from the first event; input lag {lag}"
    )
    bad = failures(tallies["read_committed"].rows(), strict=args.strict)
    verdict = "FAIL: " + "; ".join(bad) if bad else "PASS (exact topics: nothing lost or changed)"
    print("RESULT: " + verdict)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 1 if bad else 0


def describe_mismatch(topic: str, ident: str, want: dict, got: Any) -> str:
    """Which fields of a mismatched record differ, with both values (truncated)."""
    got = got if isinstance(got, dict) else {}
    diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    lines = [f"  {topic} mismatch {ident}: fields {diff}"]
    for k in diff[:4]:
        lines.append(f"    {k}: expected {str(want.get(k))[:110]} got {str(got.get(k))[:110]}")
    return "\n".join(lines)


def _recent_start_ms(args: argparse.Namespace) -> int:
    """A start so the stream ends about now: broker timestamps stay inside topic retention."""
    span_ms = int(args.count * 1000 / args.rate)
    now = int(time.time() * 1000)
    return (now - span_ms - 600_000) // 60_000 * 60_000


# --------------------------------------------------------------------------------------------
# `recovery`
# --------------------------------------------------------------------------------------------


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
    from tests.integration.harness import WorkerFactory

    tag = uuid.uuid4().hex[:8]
    bootstrap = bootstrap_servers()
    workdir = REPO / "var" / "chaos" / f"recovery-{tag}"
    workdir.mkdir(parents=True, exist_ok=True)
    env = isolated_env(tag, args.guarantee)
    factory = WorkerFactory(bootstrap, env, workdir)
    settings = factory.settings
    changelog = f"{settings.app_id}-entity-stats-changelog"
    result: dict[str, Any] = {"tag": tag, "keys": args.keys}
    try:
        first = factory.start("creator")
        marks = await asyncio.to_thread(wait_ready, first, 120)
        log(f"first worker ready in {marks['ready']:.1f} s (empty tables); stopping it")
        await asyncio.to_thread(first.stop)
        t0 = time.monotonic()
        await produce_changelog(bootstrap, changelog, args.keys, settings.partitions)
        result["produce_s"] = round(time.monotonic() - t0, 1)
        ends = await kafka_io.end_offsets(bootstrap, [changelog])
        log(f"{sum(ends.values())} records on {changelog} ({result['produce_s']} s to produce)")

        datadir = str(workdir / "data-restored")
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
    finally:
        factory.stop_all()
        if not args.keep:
            await kafka_io.delete_topics_with_prefix(
                bootstrap, [env["VIGIL_TOPIC_PREFIX"], env["VIGIL_APP_ID"]]
            )
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if result.get("cold", {}).get("ready") is not None else 1


# --------------------------------------------------------------------------------------------
# `order`: the same records, another arrival order (no Kafka)
# --------------------------------------------------------------------------------------------


def interleaved(plan: list[RawPlan], settings: Settings, batch: int) -> tuple[list[Any], list[Any]]:
    """The spec's events in event-time order, and in the order a worker reading a backlog
    sees them: `batch` records of one raw topic, then `batch` of the next, round robin."""
    ingest = Pipeline(settings)
    by_family: dict[str, list[list[Any]]] = {}
    for rec in plan:
        outs = ingest.ingest(rec.value, rec.family, kafka_origin(rec))
        by_family.setdefault(rec.family, []).append([o for o in outs if o.topic == "events"])
    everything = [e for records in by_family.values() for events in records for e in events]
    in_time = sorted(everything, key=lambda out: (out.value["ts_ms"], out.value["id"]))
    in_batches: list[Any] = []
    for start in range(0, max(len(r) for r in by_family.values()), batch):
        for records in by_family.values():
            for events in records[start : start + batch]:
                in_batches.extend(events)
    return in_time, in_batches


def process_in_order(
    events: list[Any],
    settings: Settings,
    arrivals: bool = False,
    ms_per_event: int = 1,
    progress: bool = True,
) -> tuple[Counter, dict[str, set[bytes]]]:
    """Output counts per topic (alerts also per notification kind) and every output's
    canonical value per topic, for events in this order, each in its entity's partition, as
    `offline_replay` processes them. With `arrivals`, event n arrives at n * `ms_per_event` ms,
    as on a worker (app/runtime/partition_clock.py): clock ticks come every `clock_tick_ms` of
    arrival time, carrying the ingest progress (each raw partition's newest event time so far
    and whether events of it remain; none without `progress`), and follow the last event until
    every source is idle."""
    silences: dict[str, Any] = {}
    inhibitors: dict[str, Any] = {}
    partitions = {
        p: Pipeline(settings, PipelineState(silences=silences, inhibitors=inhibitors))
        for p in range(settings.partitions)
    }
    counts: Counter = Counter()
    values: dict[str, set[bytes]] = {}
    risk = OfflineRisk(settings, None, events, partitions)
    if arrivals:  # a worker's risk stage: every partition is a producer
        risk.clock = RiskClock(risk.stage, producers=settings.partitions)

    def count(out: Any) -> None:
        if wall_clock(out.topic, out.value):
            return
        counts[out.topic] += 1
        values.setdefault(out.topic, set()).add(canonical(out.value))
        if out.topic == "alerts":
            counts[f"alerts:{out.value.get('notification')}"] += 1

    def collect(step: Any) -> None:
        for out in risk.follow(step):
            count(out)

    remaining = Counter(_raw_partition(out) for out in events)
    marks: dict[tuple[str, int], int] = {}

    def report() -> dict[str, Any] | None:
        if not progress:
            return None
        sent: dict[str, dict[str, list[Any]]] = {}
        for topic in {topic for topic, _ in remaining}:  # every partition, the empty ones too
            for part in range(settings.partitions):
                left = remaining.get((topic, part), 0)
                sent.setdefault(topic, {})[str(part)] = [marks.get((topic, part)), left > 0]
        return sent

    next_tick = settings.clock_tick_ms
    for n, out in enumerate(events):
        partition = entity_partition(out.key or "", settings.partitions)
        event = Event.from_dict(out.value)
        arrival = n * ms_per_event if arrivals else None
        if not arrivals:
            for scored in risk.before_event(partition, out.value["ts_ms"]):
                count(scored)
        else:
            while next_tick <= arrival:  # the ticks written while this event was on its way
                tick = report()
                for p, pipeline in partitions.items():
                    collect(pipeline.tick(p, next_tick, progress=tick))
                next_tick += settings.clock_tick_ms
        collect(partitions[partition].process(event, partition, arrival_ms=arrival))
        raw = _raw_partition(out)
        remaining[raw] -= 1
        marks[raw] = max(marks.get(raw, out.value["ts_ms"]), out.value["ts_ms"])
    if arrivals:  # then clock ticks, as workers write them, until every source is idle
        step = settings.clock_tick_ms
        end = len(events) * ms_per_event
        for at in range(end + step, end + settings.clock_idle_ms + 2 * step, step):
            for partition, pipeline in partitions.items():
                collect(pipeline.tick(partition, at, progress=report()))
    else:  # as `offline_replay` ends: clocks to the newest event, then to the risk stage
        for partition, pipeline in partitions.items():
            collect(pipeline.settle(partition))
        for scored in risk.end():
            count(scored)
    return counts, values


def _raw_partition(out: Any) -> tuple[str, int]:
    """The raw (topic, partition) an `events` output was ingested from."""
    origin = out.value.get("origin") or {}
    return origin.get("t", out.value["source"]), origin.get("p", 0)


def run_order(args: argparse.Namespace) -> int:
    """Print output counts for event-time order vs batch-by-topic order (order-dependence),
    and per topic how many outputs of the second order the first does not have, and back."""
    settings = Settings.from_env({})
    catalog = TopicCatalog(settings, {})
    start_ms = args.start_ms if args.start_ms is not None else 1_767_225_600_000
    plan = raw_plan(generate(args.seed, start_ms, args.rate, args.count), catalog, 4)
    in_time, in_batches = interleaved(plan, settings, args.batch)
    spec_counts, spec_values = process_in_order(in_time, settings)
    live_counts, live_values = process_in_order(in_batches, settings, arrivals=True)
    rows = {
        "event-time order (spec)": spec_counts,
        f"{args.batch} records per raw topic, round robin": live_counts,
    }
    names = sorted(set().union(*rows.values()))
    width = max(len(n) for n in names)
    print(f"{args.count} records, seed {args.seed}: outputs per topic")
    print(" " * width + "  " + "  ".join(f"{label:>42}" for label in rows))
    for name in names:
        print(name.ljust(width) + "  " + "  ".join(f"{c[name]:>42}" for c in rows.values()))
    print("\noutputs only in one order (same value = same output):")
    differ = 0
    for topic in sorted(set(spec_values) | set(live_values)):
        spec, live = spec_values.get(topic, set()), live_values.get(topic, set())
        only_spec, only_live = len(spec - live), len(live - spec)
        differ += only_spec + only_live
        name = topic.ljust(width)
        print(f"{name}  only in spec {only_spec:>6}  only in the other {only_live:>6}")
    return 1 if differ else 0


# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=("run", "recovery", "order"))
    parser.add_argument("--count", type=int, default=100_000, help="raw records (run)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=20.0, help="records per s of event time")
    parser.add_argument("--start-ms", type=int, default=None, help="first event time")
    parser.add_argument(
        "--kill-at",
        default="0.25,0.5,0.75",
        help="SIGKILL when vigil.events holds these shares of the expected events ('' = none)",
    )
    parser.add_argument(
        "--guarantee",
        default=os.environ.get("PROCESSING_GUARANTEE", "at_least_once"),
        choices=("at_least_once", "exactly_once"),
    )
    parser.add_argument("--no-uncommitted", action="store_true", help="exactly_once: one table")
    parser.add_argument("--settle", type=float, default=15.0, help="quiet s after completion")
    parser.add_argument("--stall", type=float, default=120.0, help="quiet s before giving up")
    parser.add_argument("--timeout", type=float, default=1800.0, help="overall limit, s")
    parser.add_argument("--keys", type=int, default=1_000_000, help="table keys (recovery)")
    parser.add_argument(
        "--ready-timeout", type=float, default=900.0, help="recovery: wait for ready, s"
    )
    parser.add_argument(
        "--strict", action="store_true", help="also fail on order-dependent coarse keys lost"
    )
    parser.add_argument("--batch", type=int, default=500, help="order: records per topic turn")
    parser.add_argument("--keep", action="store_true", help="keep the topics")
    parser.add_argument("--json", help="also write the result as JSON to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.chdir(REPO)
    if args.mode == "recovery":
        return asyncio.run(run_recovery(args))
    if args.mode == "order":
        return run_order(args)
    return asyncio.run(run_chaos(args))


if __name__ == "__main__":
    sys.exit(main())
