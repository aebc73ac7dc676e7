"""The chaos runs' checker: what the outputs of a generated stream must be, and how the
outputs that arrived compare with them. Pure (no Kafka): tests/unit/test_chaos_compare.py
checks it, tests/integration/test_rebalance.py and scripts/replay_digest.py use it.

The spec: each generated record with the Kafka coordinates a worker will see (`raw_plan`), and
every output the offline pipeline derives from them (`expected_outputs`). The comparison: per
topic, by output id, what was lost, repeated, changed or not expected (`Tally`, `compare`,
`failures`), printed as a table (`format_table`, `LEGEND`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.generator.stream import TelemetryGenerator
from app.model.outputs import Origin, Output
from app.pipeline import Pipeline
from app.replay import replay_events
from app.settings import Settings
from app.topics import TopicCatalog, entity_partition

#: Output streams a chaos run does not check: `control` is an input.
NOT_CHECKED = frozenset({"control"})


def _risk_signal_kind(topic: str, value: Any) -> Any:
    """The `kind` of a record on `risk_signals` (None elsewhere)."""
    return value.get("kind") if topic == "risk_signals" and isinstance(value, dict) else None


def wall_clock(topic: str, value: Any) -> bool:
    """A record whose value follows when a worker's clock ticked (a `clock` heartbeat on
    `risk_signals`, tables/risk/signals.py), so no two runs agree on it: not compared."""
    return _risk_signal_kind(topic, value) == "clock"


def heartbeat(topic: str, value: Any) -> bool:
    """A risk heartbeat: a `clock` one (see `wall_clock`) or a `tick` at a risk boundary, of
    which a clock step sends at most the latest three (app/pipeline.py `MAX_RISK_TICKS`), so
    which ones a worker sends follows how far its clock's steps went. Not judged by a chaos
    run: the risk records they drive are."""
    return _risk_signal_kind(topic, value) in ("clock", "tick")


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
        if not heartbeat(topic, value):
            self._topic(topic).expect(value)

    def receive(self, topic: str, value: Any) -> None:
        if not heartbeat(topic, value):
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
does not emit. * order-dependent topic (see ORDER_DEPENDENT in scripts/chaos_check.py): its records
follow how the raw topics interleave, so a crash-free run differs from the spec too; reported,
with `keys lost` (a coarse key, e.g. alert fingerprint and status, the spec emits and that never
arrived), and judged only with --strict."""


def describe_mismatch(topic: str, ident: str, want: dict, got: Any) -> str:
    """Which fields of a mismatched record differ, with both values (truncated)."""
    got = got if isinstance(got, dict) else {}
    diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    lines = [f"  {topic} mismatch {ident}: fields {diff}"]
    for k in diff[:4]:
        lines.append(f"    {k}: expected {str(want.get(k))[:110]} got {str(got.get(k))[:110]}")
    return "\n".join(lines)


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
    for out in ingest_plan(ingest, plan):
        if out.topic == "events":
            events.append(out)
        else:
            yield out.topic, out.value
    logical = {spec.name: spec.logical for spec in TopicCatalog(settings).specs()}
    for record in replay_events(events, settings, ingest.catalogue, flush=False):
        yield logical.get(record["topic"], record["topic"]), record["value"]


def ingest_plan(ingest: Pipeline, plan: Iterable[RawPlan]) -> Iterator[Output]:
    """Every output of `ingest` for the planned records, in order: each record ingested with
    the Origin the ingest agent builds from its Kafka message (`kafka_origin`)."""
    for rec in plan:
        yield from ingest.ingest(rec.value, rec.family, kafka_origin(rec))


def generate(seed: int, start_ms: int, rate: float, count: int) -> list[Any]:
    """The generated records (`vigil generate`'s generator, deterministic per seed)."""
    return list(TelemetryGenerator(seed=seed).records(start_ms, rate, count))
