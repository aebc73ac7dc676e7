"""Every topic Vigil reads or writes, declared once: logical name, Kafka name, partitions.

Raw telemetry arrives on `telemetry.<family>` (one topic per source family); Vigil writes
`vigil.<stream>`. Names take an optional prefix (`VIGIL_TOPIC_PREFIX`) and each can be renamed
with `VIGIL_TOPIC_<LOGICAL>` (e.g. `VIGIL_TOPIC_EVENTS=prod.vigil.events`,
`VIGIL_TOPIC_RAW_K8S_AUDIT=audit.k8s`; `Settings.topic_names`). All topics share
`VIGIL_PARTITIONS` partitions, so that everything keyed by entity is co-partitioned with the
tables that hold its state. The worker binds them to Faust in app/faust_topics.py.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka.partitioner import murmur2

from app.settings import Settings

#: Raw topic families, each read by the adapters registered for it (app/sources/registry.py).
RAW_FAMILIES: tuple[str, ...] = (
    "falco",
    "scans",
    "ci",
    "k8s-audit",
    "cloudtrail",
    "terraform",
    "alertmanager",
    "logs",
    "metrics",
)

#: Downstream streams: logical name -> what they carry (see docs/topics.md for schemas).
OUTPUT_STREAMS: dict[str, str] = {
    "events": "normalized canonical events, keyed by entity",
    "windows": "final value of every closed event-time window, once per window",
    "anomalies": "anomalies on metric series and event rates",
    "drift": "configuration drift: drifted / resolved",
    "violations": "compliance rule violations with their controls",
    "posture": "compliance posture changes per framework, control and scope",
    "alerts": "deduplicated, scored alert notifications",
    "risk": "per-service risk scores with contributions",
    "scorecards": "deployment risk scorecards (allow / warn / block)",
    "deadletter": "records that could not be processed, with the reason and original bytes",
    "late": "events later than the window grace period",
    "audit": "hash-chained audit trail of silences, gate decisions and reloads",
    "control": "commands to Vigil: create and expire silences",
    "risk_signals": "internal: risk inputs keyed by service, for the risk stage",
    "alerts-retry": "alert deliveries waiting for another attempt (sink, attempts, last error)",
}


#: Streams kept in one partition: a single, totally ordered sequence (commands, audit chain).
SINGLE_PARTITION: frozenset[str] = frozenset({"control", "audit"})


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: its logical name (`events`, `raw:falco`), Kafka name and partition count."""

    logical: str
    name: str
    partitions: int
    raw_family: str | None = None


class TopicCatalog:
    """The resolved topic names for one set of settings."""

    def __init__(self, settings: Settings, renames: Mapping[str, str] | None = None) -> None:
        """`renames`: `VIGIL_TOPIC_<LOGICAL>` -> Kafka name; default `settings.topic_names`."""
        self.settings = settings
        self._renames = settings.topic_names if renames is None else renames
        self._specs: dict[str, TopicSpec] = {}
        for family in RAW_FAMILIES:
            logical = f"raw:{family}"
            name = self._resolve(f"RAW_{family}", f"telemetry.{family}")
            self._specs[logical] = TopicSpec(logical, name, settings.partitions, family)
        for stream in OUTPUT_STREAMS:
            name = self._resolve(stream, f"vigil.{stream}")
            partitions = 1 if stream in SINGLE_PARTITION else settings.partitions
            self._specs[stream] = TopicSpec(stream, name, partitions)
        self._family_by_name = {s.name: s.raw_family for s in self._specs.values() if s.raw_family}

    def _resolve(self, logical: str, default: str) -> str:
        env_name = "VIGIL_TOPIC_" + logical.upper().replace("-", "_")
        return self._renames.get(env_name) or f"{self.settings.topic_prefix}{default}"

    def name(self, logical: str) -> str:
        """Kafka name of a logical topic (`events`, `deadletter`, `raw:falco`, ...)."""
        return self._specs[logical].name

    def partitions(self, logical: str) -> int:
        """Partition count of a logical topic."""
        return self._specs[logical].partitions

    def raw(self, family: str) -> str:
        """Kafka name of a raw family's topic."""
        return self._specs[f"raw:{family}"].name

    def family_of(self, topic_name: str) -> str | None:
        """The raw family a Kafka topic carries, or None when it is not a raw topic."""
        return self._family_by_name.get(topic_name)

    def raw_topics(self) -> list[str]:
        """Kafka names of every raw topic."""
        return [self.raw(family) for family in RAW_FAMILIES]

    def specs(self) -> list[TopicSpec]:
        """Every topic Vigil declares."""
        return list(self._specs.values())


@functools.lru_cache(maxsize=65_536)
def _key_hash(key: bytes) -> int:
    """Kafka's default partitioner's hash of a key (murmur2, positive). Cached: murmur2 is pure
    Python, and keys (entities, fingerprints, services) repeat."""
    return murmur2(key) & 0x7FFFFFFF


def entity_partition(entity: str, partitions: int) -> int:
    """The `vigil.events` partition of an entity: Kafka's default partitioner (murmur2 of the
    UTF-8 key), as the producer applies it."""
    return _key_hash(entity.encode()) % partitions


def kafka_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Kafka's default partitioner (aiokafka's `DefaultPartitioner`: murmur2 of the key, a
    random available partition without one), with each key's hash remembered: the workers'
    producer partitioner (`producer_partitioner`, app/faust_app.py)."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[_key_hash(key) % len(all_partitions)]
