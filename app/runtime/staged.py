"""Staged writes over a state mapping: read-your-writes now, apply to the table later.

The process agent sends an event's outputs and waits for the broker's acknowledgement before it
applies that event's state writes. A crash in between replays the event: its outputs go out
again (same deterministic ids, deduplicated downstream) instead of being lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

import orjson

_DELETED = object()
_ABSENT = object()


class StagedState:
    """A read-through overlay of one mapping (a Faust table, or a dict offline).

    With an `owner` (the partition whose records these are), every dict value written is
    marked with it (`p`), so a partition's timers can be rebuilt from a table that holds
    several partitions (`owned_by`): the stages never see a partition.
    """

    def __init__(
        self,
        base: MutableMapping[str, Any],
        owner: int | None = None,
        units: list[int] | None = None,
    ) -> None:
        self.base = base
        self.owner = owner
        self.pending: dict[str, Any] = {}
        #: Previous pending values of the keys written since `mark()` (for `rollback()`).
        self._undo: dict[str, Any] = {}
        #: A counter shared with other staged tables (`units[0]`): a new value starts a unit
        #: of work for all of them at once, as `mark()` on each would (see `Batch`).
        self._units = units
        self._unit = units[0] if units is not None else 0
        #: The pending values serialized by `encode`, by key.
        self._encoded: dict[str, bytes] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """The staged value if any, else the stored one."""
        if key in self.pending:
            value = self.pending[key]
            return default if value is _DELETED else value
        value = self.base.get(key)
        return default if value is None else value

    def items(self) -> Iterator[tuple[str, Any]]:
        """The base's items with the staged writes over them."""
        pending = self.pending
        for key, value in self.base.items():
            if key not in pending:
                yield key, value
        for key, value in pending.items():
            if value is not _DELETED:
                yield key, value

    def __setitem__(self, key: str, value: Any) -> None:
        if self.owner is not None and type(value) is dict and "p" not in value:
            value["p"] = self.owner
        self._remember(key)
        self.pending[key] = value
        self._encoded.pop(key, None)

    def delete(self, key: str) -> None:
        """Stage the removal of `key`."""
        self._remember(key)
        self.pending[key] = _DELETED
        self._encoded.pop(key, None)

    def _remember(self, key: str) -> None:
        units = self._units
        if units is not None and self._unit != units[0]:
            self.mark()
        if key not in self._undo:
            self._undo[key] = self.pending.get(key, _ABSENT)

    def mark(self) -> None:
        """Start a unit of work that `rollback()` can undo (one event of a batch)."""
        self._undo.clear()
        if self._units is not None:
            self._unit = self._units[0]

    def rollback(self) -> None:
        """Undo every write since `mark()` (or since the shared counter last moved)."""
        units = self._units
        if units is not None and self._unit != units[0]:
            self.mark()  # nothing written in the current unit
            return
        for key, previous in self._undo.items():
            if previous is _ABSENT:
                self.pending.pop(key, None)
            else:
                self.pending[key] = previous
        self._undo.clear()

    def encode(self, dumps: Callable[[Any], bytes]) -> None:
        """Serialize every staged value once, if the base can store it so (`put_encoded`, as
        app/runtime/table_cache.py does): `changes()` then gives the journal the bytes `commit()`
        stores, as orjson fragments. Call it when the batch's writes are final."""
        if hasattr(self.base, "put_encoded"):
            self._encoded = {
                key: dumps(value) for key, value in self.pending.items() if value is not _DELETED
            }

    def changes(self) -> list[tuple[str, tuple[bool, Any]]]:
        """The staged writes as `(key, (deleted, value))`, in the order first written (a
        value `encode`d already comes as an `orjson.Fragment` of its bytes)."""
        encoded = self._encoded
        out: list[tuple[str, tuple[bool, Any]]] = []
        for key, value in self.pending.items():
            if value is _DELETED:
                out.append((key, (True, None)))
            elif key in encoded:
                out.append((key, (False, orjson.Fragment(encoded[key]))))
            else:
                out.append((key, (False, value)))
        return out

    def commit(self) -> int:
        """Apply every staged write to the base mapping; returns how many."""
        if not self.pending and not self._encoded:  # most tables of a step: nothing written
            return 0
        applied = len(self.pending)
        encoded = self._encoded
        for key, value in self.pending.items():
            if value is _DELETED:
                if key in self.base:
                    del self.base[key]
            elif key in encoded:
                self.base.put_encoded(key, value, encoded[key])  # type: ignore[attr-defined]
            else:
                self.base[key] = value
        self.discard()
        return applied

    def discard(self) -> None:
        """Forget the staged writes."""
        self.pending.clear()
        self._undo.clear()
        self._encoded = {}


def owned_by(items: Iterable[tuple[str, Any]], partition: int) -> Iterator[tuple[str, Any]]:
    """The `(key, value)` items written by `partition` (see `StagedState`'s `owner`)."""
    for key, value in items:
        if isinstance(value, dict) and value.get("p") == partition:
            yield key, value
