"""An agent's step journal on a Faust table (the logic is in app/runtime/step_journal.py).

Per input partition the agent keeps the steps whose changelog records Kafka has not confirmed
yet; each new step's journal record carries their writes and its own. Usage per step:

1. `redo(partition, tables_changed)` before the first event of a partition after an
   assignment: applies the last journal record again (`recover`) and sends its outputs again;
   from then on `resends` tells the records the partition's state holds already
   (app/runtime/resends.py);
2. `commit(staged_of, outputs_of, last_of)` once per batch: journals each partition's staged
   writes and outputs (`write`), sends the outputs, waits for them and the journal records,
   then applies the writes, each partition's under its last event (`confirm_and_apply`).
   Every agent that writes state commits this way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from app.model.outputs import Output
from app.runtime import changelog_writes, step_journal
from app.runtime.current_event import make_current
from app.runtime.direct_writes import DirectWrites
from app.runtime.resends import ResendGuard
from app.runtime.sending import send_and_confirm
from app.runtime.staged import StagedState

log = logging.getLogger(__name__)


class Journal:
    """Write-ahead journal of one agent's steps, one record per input partition."""

    def __init__(
        self,
        table: MutableMapping[str, Any],
        tables: Mapping[str, MutableMapping[str, Any]],
        name: str = "journal",
        direct: DirectWrites | None = None,
    ) -> None:
        self.table = table
        #: the agent's name, for the log
        self.name = name
        self.tables = tables
        #: where the journal records and the writes made to `tables` go straight to RocksDB
        #: and the changelogs, if they do (app/runtime/direct_writes.py); their futures are
        #: tracked like Faust's
        self.direct = direct
        self._open: dict[int, list[tuple[list[asyncio.Future], step_journal.Writes]]] = {}
        self._pending: dict[int, step_journal.Writes] = {}
        self._recovered: set[int] = set()
        #: the records each partition's state holds already
        self.resends = ResendGuard(name)
        #: steps not journaled because their record was too large for Kafka
        self.oversize = 0

    def reset(self) -> None:
        """Partitions were revoked: recover each again before its next event."""
        self._open.clear()
        self._pending.clear()
        self._recovered.clear()
        self.resends.forget()

    def needs_recovery(self, partition: int) -> bool:
        """Whether `recover` has not run for `partition` since the last assignment."""
        return partition not in self._recovered

    def recover(self, partition: int) -> list[Output]:
        """Apply the partition's last journal record again (the current event must be of
        that partition); returns the outputs to send again."""
        self._recovered.add(partition)
        data = self.table.get(str(partition))
        record = step_journal.decode(data) if data else None
        self.resends.restore(partition, record)
        if record is None:
            return []
        return step_journal.redo(record, self.tables)

    async def redo(self, partition: int, tables_changed: Callable[[], None]) -> None:
        """`recover` the partition, and when its last step was applied again: tell the agent
        its tables changed behind whatever it derived from them (`tables_changed`), then send
        the step's outputs again and wait for them."""
        again = self.recover(partition)
        if self.direct is not None:
            await self.direct.flush()
        if again:
            log.info("%s partition %s: applied its last step again", self.name, partition)
            tables_changed()
            await send_and_confirm(again)

    def write(
        self, partition: int, offset: int, writes: step_journal.Writes, outputs: Iterable[Output]
    ) -> None:
        """Journal a step's writes and outputs, with those of its unconfirmed predecessors
        (the current event must be of `partition`)."""
        steps = self._open.setdefault(partition, [])
        steps[:] = [
            (futures, w) for futures, w in steps if not changelog_writes.all_confirmed(futures)
        ]
        self._pending[partition] = writes
        combined = step_journal.merged([*(w for _, w in steps), writes])
        origins = self.resends.origins(partition)
        data = step_journal.encode(step_journal.record(offset, combined, outputs, origins))
        size = len(data)
        if size > step_journal.MAX_RECORD_BYTES:
            # Kafka would refuse it and the agent could never get past this step: journal
            # nothing for it (a crash may then leave it half-written), loudly.
            self.oversize += 1
            log.warning(
                "partition %s offset %s: journal record of %s bytes over %s; not journaled",
                partition,
                offset,
                size,
                step_journal.MAX_RECORD_BYTES,
            )
            data = step_journal.encode(step_journal.record(offset, {}, [], origins))
        if self.direct is not None:
            self.direct.put(self.table, partition, str(partition), data)
        else:
            self.table[str(partition)] = data  # serialized once: the table stores bytes

    def applied(self, futures: list[asyncio.Future]) -> None:
        """The journaled steps' writes were applied; `futures`: their changelog records."""
        for partition, writes in self._pending.items():
            self._open.setdefault(partition, []).append((futures, writes))
        self._pending.clear()

    async def confirm_and_apply(self, outputs: list[Output], apply: Callable[[], None]) -> None:
        """After `write`: send the outputs, wait for them and for the journal records, then
        `apply` the writes and remember their changelog records (see the module docstring)."""
        if self.direct is not None:
            await self.direct.flush()  # the journal records `write` put
        journaled = changelog_writes.take()
        await send_and_confirm(outputs)
        if journaled:
            await asyncio.gather(*journaled)
        apply()
        if self.direct is not None:
            await self.direct.flush()
        self.applied(changelog_writes.take())

    async def commit(
        self,
        staged_of: Mapping[int, Mapping[str, StagedState]],
        outputs_of: Mapping[int, list[Output]],
        last_of: Mapping[int, Any],
    ) -> None:
        """Commit one batch: `staged_of` holds each partition's staged tables by name,
        `outputs_of` its outputs, `last_of` its last event (Faust writes a table's changelog
        record to the partition of the current event, so each partition's journal record and
        writes go out under one of its own events)."""
        for partition, last in last_of.items():
            writes = step_journal.writes_of(staged_of[partition])
            if writes:
                make_current(last)
                self.write(partition, last.message.offset, writes, outputs_of.get(partition, []))

        def apply() -> None:
            for partition, last in last_of.items():
                make_current(last)
                for staged in staged_of[partition].values():
                    staged.commit()

        outputs = [out for outs in outputs_of.values() for out in outs]
        await self.confirm_and_apply(outputs, apply)
