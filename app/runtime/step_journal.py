"""A write-ahead record of each step's state writes, so a crash never leaves a step half-written.

A step (one event, or one batch of a partition's events) writes several keys in several
tables. Each Faust table has its own changelog, written in the background, so a SIGKILL can
leave any subset of those records in Kafka: an alert's state written and its group's not, a
held event released in `observed` and its violation alert missing from `alerts`. After the
restart the stages would replay the step against that mixed state, so outputs are lost or
changed.

So before a step's writes are applied, one record with all of them (and the step's outputs)
goes to the partition's journal key and is acknowledged together with the outputs. After a
restart, before the partition's first event, the journal is applied again: every key the last
steps wrote gets its latest value, whatever part of their changelog records survived, and the
journaled outputs are sent again (same ids). The record also carries the writes of earlier
steps whose changelog records were not acknowledged yet, so the agent never waits for them.

Record (JSON, compressed when large: `encode`): `{"o": offset of the step's last input, "w":
{table: {key: value}}, "d": {table: [deleted keys]}, "out": [[topic, key, value], ...], "src":
{raw partition: highest raw position applied}}` (`src`: app/runtime/resends.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import orjson
from isal import isal_zlib

from app.model.outputs import Output
from app.runtime.staged import StagedState

#: Largest journal record written (Kafka's default message limit is 1 MiB); a step whose record
#: would be larger is not journaled (app/runtime/journal.py counts and logs it).
MAX_RECORD_BYTES = 900_000
#: Records from this size (bytes of JSON) on are stored zlib-compressed: only the rare huge
#: ones (compressing every risk step's ~100 KB record cost the risk agent a third of its speed
#: in a chaos run, and a slower worker made its sources look idle).
COMPRESS_FROM = 262_144

#: One step's writes: table name -> key -> value, `DELETED` for a removed key.
Writes = dict[str, dict[str, Any]]


class _Deleted:
    def __repr__(self) -> str:
        return "DELETED"


DELETED = _Deleted()


def writes_of(staged: Mapping[str, StagedState]) -> Writes:
    """The staged writes of a step, by table (before they are committed)."""
    writes: Writes = {}
    for name, state in staged.items():
        changes = state.changes()
        if changes:
            writes[name] = {key: DELETED if gone else value for key, (gone, value) in changes}
    return writes


def merged(steps: Iterable[Writes]) -> Writes:
    """The writes of consecutive steps as one: a later write of a key replaces an earlier."""
    out: Writes = {}
    for writes in steps:
        for name, changes in writes.items():
            out.setdefault(name, {}).update(changes)
    return out


def record(
    offset: int,
    writes: Writes,
    outputs: Iterable[Output],
    origins: Mapping[str, list[int]] | None = None,
) -> dict[str, Any]:
    """The journal value for a step read up to `offset` (see the module docstring)."""
    values: dict[str, dict[str, Any]] = {}
    deleted: dict[str, list[str]] = {}
    for name, changes in writes.items():
        for key, value in changes.items():
            if value is DELETED:
                deleted.setdefault(name, []).append(key)
            else:
                values.setdefault(name, {})[key] = value
    return {
        "o": offset,
        "w": values,
        "d": deleted,
        "out": [[out.topic, out.key, out.value] for out in outputs],
        "src": dict(origins or {}),
    }


def encode(record: Mapping[str, Any]) -> bytes:
    """A journal record as stored: JSON, zlib-compressed (marker `Z`) beyond
    `COMPRESS_FROM` bytes (a step resolving a scan's findings writes many similar alert states:
    ~1 MB of JSON, ~10x smaller compressed). The zlib stream is ISA-L's (python-isal), the
    same format as the standard library's at ~4.5x its speed: on a backlog the journal
    compressed ~40 MB per 30,000 raw records, 1.7 % of a worker's CPU with `zlib`."""
    data = orjson.dumps(record)
    if len(data) < COMPRESS_FROM:
        return data
    return b"Z" + isal_zlib.compress(data, 1)


def decode(data: bytes) -> dict[str, Any]:
    """A stored journal record (see `encode`; any zlib stream, whoever compressed it)."""
    if data[:1] == b"Z":
        data = isal_zlib.decompress(data[1:])
    return orjson.loads(data)


def redo(
    journal: Mapping[str, Any], tables: Mapping[str, MutableMapping[str, Any]]
) -> list[Output]:
    """Apply a journal record's writes to `tables` again; returns its outputs to send again.

    Raises KeyError naming a table the record has writes for and `tables` does not have.
    """
    for name, values in (journal.get("w") or {}).items():
        table = tables[name]
        for key, value in values.items():
            table[key] = value
    for name, keys in (journal.get("d") or {}).items():
        table = tables[name]
        for key in keys:
            if key in table:
                del table[key]
    return [Output(topic, key, value) for topic, key, value in journal.get("out") or []]
