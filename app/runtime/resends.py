"""Which records a partition's state holds already: the runtime's answer, so no stage asks.

A record comes back after a crash or a rebalance in two ways:

- **read again**: the input partition is read again from its committed offset, which lags
  what was applied. The partition's last journal record (app/runtime/step_journal.py) names the
  highest offset its state holds, and every step up to it is in the state once the record
  is applied again; a record at or below it is skipped.
- **sent again**: ingest re-sends the events of the raw records it had not committed, with the
  same ids, at new offsets of `vigil.events`. Each event carries its raw position (`origin`:
  raw topic, partition, offset, index), and the events of one raw partition reach a
  `vigil.events` partition in raw order (one ingest owner per raw partition, and the producer
  keeps one batch per partition in flight), so a position at or below the highest seen from
  that raw partition is a copy. Those highest positions go into the journal record with the
  step's writes, so they survive exactly as the state does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


class ResendGuard:
    """Per input partition: the highest offset applied and, per raw partition, the highest
    raw position applied."""

    def __init__(self, name: str = "") -> None:
        #: the agent's name, for the log
        self.name = name
        self._offsets: dict[int, int] = {}
        self._origins: dict[int, dict[str, list[int]]] = {}
        #: events recognised as copies ingest sent again
        self.copies = 0
        #: (partition, raw partition) whose first copy since the last restore was logged ("":
        #: its first record read again)
        self._reported: set[tuple[int, str]] = set()

    def restore(self, partition: int, record: Mapping[str, Any] | None) -> None:
        """Start `partition` from its last journal record (None: from nothing)."""
        record = record or {}
        self._offsets[partition] = int(record.get("o", -1))
        self._origins[partition] = {k: list(v) for k, v in (record.get("src") or {}).items()}
        self._reported = {r for r in self._reported if r[0] != partition}
        log.info(
            "%s partition %s: state holds offsets up to %s and raw positions %s",
            self.name,
            partition,
            self._offsets[partition],
            self._origins[partition],
        )

    def forget(self) -> None:
        """Partitions were revoked: each is restored again before its next record."""
        self._offsets.clear()
        self._origins.clear()
        self._reported.clear()

    def admit(self, partition: int, offset: int, origin: Mapping[str, Any] | None = None) -> bool:
        """Whether to apply the record at `offset` (an event from raw position `origin`):
        not when the partition's state holds it already, read again or sent again (a copy
        is counted in `copies`). An admitted record counts as applied from then on. Events
        without an origin (ticks, offline input) are never copies."""
        if offset <= self._offsets.get(partition, -1):
            if (partition, "") not in self._reported:  # one line per partition
                self._reported.add((partition, ""))
                log.info(
                    "%s partition %s: offset %s read again, held by the state already (up to "
                    "%s); later ones are not logged",
                    self.name,
                    partition,
                    offset,
                    self._offsets[partition],
                )
            return False
        self._offsets[partition] = offset
        if origin is None:
            return True
        origins = self._origins.setdefault(partition, {})
        source = f"{origin['t']}:{origin['p']}"
        position = [origin["o"], origin["i"]]
        seen = origins.get(source)
        if seen is not None and position <= seen:
            self.copies += 1
            if (partition, source) not in self._reported:  # one line per raw partition
                self._reported.add((partition, source))
                log.info(
                    "%s partition %s: offset %s from %s %s taken for a copy (highest applied "
                    "%s); later copies are counted, not logged",
                    self.name,
                    partition,
                    offset,
                    source,
                    position,
                    seen,
                )
            return False
        origins[source] = position
        return True

    def origins(self, partition: int) -> dict[str, list[int]]:
        """The highest raw position applied per raw partition, for the journal record."""
        return dict(self._origins.get(partition, {}))
