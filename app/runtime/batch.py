"""A batch of events processed together: staged writes per table and partition, read by the
batch's later events and applied at once after the outputs were acknowledged; and a `Step`,
what one event or tick produced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.model.outputs import Output
from app.runtime.staged import StagedState
from app.runtime.table_cache import partition_view


class Batch:
    """Staged writes shared by a batch of events: one StagedState per table and partition of
    `state` (an object with one mapping attribute per table, such as `PipelineState`; its
    `UNOWNED` names the tables whose values are not marked with their partition, see
    `StagedState`'s `owner`).

    Events of one batch read each other's pending writes, and the whole batch's writes are
    applied at once after its outputs were acknowledged, so the broker is waited for once per
    batch instead of once per event.
    """

    def __init__(self, state: Any) -> None:
        self.state = state
        #: Each partition's staged tables by name, in the order first staged.
        self._of_partition: dict[int, dict[str, StagedState]] = {}
        #: What `view` built, by partition.
        self._views: dict[int, Any] = {}
        #: The current event's number, shared by every staged table (`StagedState`'s `units`).
        self._units = [0]

    def staged(self, partition: int, table: str) -> StagedState:
        """The staged view of one table for one partition in this batch."""
        tables = self._of_partition.setdefault(partition, {})
        staged = tables.get(table)
        if staged is None:
            base = partition_view(getattr(self.state, table), partition)
            owner = None if table in getattr(self.state, "UNOWNED", ()) else partition
            staged = tables[table] = StagedState(base, owner, self._units)
        return staged

    def view(self, partition: int, build: Callable[[Batch, int], Any]) -> Any:
        """`build(self, partition)`, built once per partition in this batch: a bundle of the
        partition's staged tables that every event of the partition reads (`staged_tables`)."""
        view = self._views.get(partition)
        if view is None:
            view = self._views[partition] = build(self, partition)
        return view

    def begin_event(self) -> None:
        """Start one event's unit of work (see `rollback_event`) in every staged table at once:
        each one forgets its previous event's undo record on its next write."""
        self._units[0] += 1

    def rollback_event(self) -> None:
        """Undo the writes of the event that failed, keep the rest of the batch."""
        for tables in self._of_partition.values():
            for staged in tables.values():
                staged.rollback()

    def encode(self, dumps: Callable[[Any], bytes]) -> None:
        """Serialize the batch's writes once, where the tables can store them so
        (`StagedState.encode`)."""
        for tables in self._of_partition.values():
            for staged in tables.values():
                staged.encode(dumps)

    def tables_of(self, partition: int) -> dict[str, StagedState]:
        """The staged tables of one partition by table name."""
        return dict(self._of_partition.get(partition, {}))

    def for_partition(self, partition: int) -> list[StagedState]:
        """Every staged table of one partition, to commit under one of that partition's
        events."""
        return list(self._of_partition.get(partition, {}).values())


@dataclass(slots=True)
class Step:
    """What processing one event produced: outputs to send, then state writes to commit."""

    outputs: list[Output]
    staged: list[StagedState]

    def commit(self) -> None:
        """Apply the staged writes (after the outputs were acknowledged)."""
        for state in self.staged:
            state.commit()
