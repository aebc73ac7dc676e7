"""Process stage: canonical events -> stateful logic on entity-keyed tables -> downstream topics.

Consumes `vigil.events` (keyed by entity) so every table it touches is co-partitioned with its
input: one hop from normalized event to every derived output. Events are processed in batches
of up to `VIGIL_BATCH_MAX` (default 500: what is buffered, waiting at most
`VIGIL_BATCH_LINGER_MS` for more; docs/crash-safety.md has the chaos runs); a batch's outputs
are sent and acknowledged together with a journal record of its state writes before those are
applied, and its input offsets are committed after that (`Journal.commit`,
app/runtime/journal.py: a crash never leaves a step half-written, and a record read or sent
again is skipped by the runtime, app/runtime/resends.py).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, NamedTuple

import orjson

from agents.clock_ticks import ingest_backlog
from agents.history import capture, record_process
from app import metrics
from app.codecs import dumps_value
from app.dead_letters import dead_letter
from app.faust_app import app, settings
from app.faust_topics import declare_output_topics, events_in_topic
from app.model.events import Event
from app.model.outputs import Origin, Output
from app.pipeline import Pipeline, PipelineState
from app.runtime import changelog_writes, direct_writes
from app.runtime.acking import processed_batches
from app.runtime.alignment import PartitionAligner
from app.runtime.batch import Batch
from app.runtime.current_event import make_current
from app.runtime.global_snapshot import GlobalSnapshot
from app.runtime.journal import Journal
from app.runtime.partition_clock import is_tick, tick_progress
from app.runtime.table_cache import CachedTable, cache_table
from app.sources.errors import ErrorCode, NormalizeError
from tables.definitions import (
    alert_state,
    clock_state,
    desired_state,
    entity_stats,
    group_state,
    held_state,
    inhibitors,
    observed_state,
    posture_state,
    process_journal,
    series_state,
    silences,
)

log = logging.getLogger(__name__)


#: The cached tables' and the journal's writes, straight to RocksDB and the changelogs
#: (app/runtime/direct_writes.py).
direct = direct_writes.for_agent(app, settings)


def _cached(table):
    """The table behind a decoded-value cache (app/runtime/table_cache.py), unless it is off."""
    return cache_table(table, settings, direct)


pipeline = Pipeline(
    settings,
    PipelineState(
        entities=_cached(entity_stats),
        series=_cached(series_state),
        alerts=_cached(alert_state),
        groups=_cached(group_state),
        # Global tables (other workers write them too): read from a snapshot, taken again
        # after every change (app/runtime/global_snapshot.py).
        silences=GlobalSnapshot(silences),
        inhibitors=GlobalSnapshot(inhibitors),
        desired=_cached(desired_state),
        observed=_cached(observed_state),
        posture=_cached(posture_state),
        clock=_cached(clock_state),
        held=_cached(held_state),
    ),
)
#: The cached tables and snapshots, forgotten on every rebalance.
snapshots = [pipeline.state.silences, pipeline.state.inhibitors]
cached_tables = [
    table
    for table in (getattr(pipeline.state, f.name) for f in dataclasses.fields(PipelineState))
    if isinstance(table, CachedTable)
]


metrics.watch_pipeline(pipeline)

#: Each partition's last steps, applied again after a crash (app/runtime/step_journal.py).
journal = Journal(
    process_journal,
    {f.name: getattr(pipeline.state, f.name) for f in dataclasses.fields(PipelineState)},
    name="process",
    direct=direct,
)
#: `vigil.events` partitions paused for being too far ahead in event time: the risk clock
#: waits for the slowest partition (app/runtime/source_alignment.py).
aligner = PartitionAligner(app, settings, "process")
metrics.watch_bound("held_events", lambda: pipeline.held_overflow)
metrics.watch_bound("alert_inputs", lambda: pipeline.alerts.stats["overflow"])
metrics.watch_bound("process_journal", lambda: journal.oversize)
metrics.watch_behind_clock(lambda: pipeline.behind_clock)


@app.timer(interval=60.0)
async def _window_state_metrics() -> None:
    """Window state size for /metrics (a scan of this worker's series table)."""
    await metrics.refresh_window_state(series_state.items())


@app.on_partitions_revoked.connect
async def _forget_schedules(sender, revoked, **kwargs) -> None:
    """Partitions may move: window schedules are rebuilt from the tables on next use, and
    each partition's journal is applied again before its next event."""
    pipeline.forget_schedules()
    journal.reset()
    for table in cached_tables:
        table.forget()
    for snapshot in snapshots:
        snapshot.invalidate()
    await aligner.release()


@app.timer(interval=1.0)
async def _align_when_quiet() -> None:
    """Also decide without events: the slowest partition may have stopped receiving."""
    await aligner.align()


async def _recover(events: list) -> None:
    """Before a partition's first event since an assignment, apply its last journal record
    again and send its outputs again (app/runtime/step_journal.py)."""
    for event in events:
        partition = event.message.partition
        if journal.needs_recovery(partition):
            for table in cached_tables:  # recovery or another worker may have changed it
                table.forget(partition)
            make_current(event)
            await journal.redo(partition, pipeline.forget_schedules)


def _linger_s() -> float:
    """How long a batch waits for more events: longer while this worker's ingest reads a
    backlog (`VIGIL_BATCH_BACKLOG_LINGER_MS`), when waiting delays nothing not late already
    and a larger batch writes each table key and the journal fewer times."""
    if settings.batch_max > 1 and ingest_backlog() >= settings.batch_max:
        return settings.batch_backlog_linger_ms / 1000
    return settings.batch_linger_ms / 1000


class Decoded(NamedTuple):
    """A `vigil.events` record read: its JSON value, its canonical event (None for a clock
    tick) and why it could not be read, if it could not."""

    value: Any
    canonical: Event | None
    failure: Exception | None

    @property
    def raw_position(self) -> dict[str, Any] | None:
        """Where ingest read the raw record (`Event.origin`), to recognise a copy."""
        return self.canonical.origin if self.canonical is not None else None


def _decode(event) -> Decoded:
    """Read one `vigil.events` record (see `Decoded`)."""
    try:
        value = orjson.loads(event.value)
        return Decoded(value, None if is_tick(value) else Event.from_dict(value), None)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return Decoded(None, None, exc)


async def _apply(
    event, decoded: Decoded, batch: Batch, outputs: list[Output], observed: list
) -> None:
    """One record of the batch through the pipeline: its outputs go to `outputs`, what the
    metrics see to `observed`; a record that is not a canonical event, or whose processing
    raised, becomes its dead letter (and its writes are undone)."""
    message = event.message
    value, canonical, failure = decoded
    origin = Origin(message.topic, message.partition, message.offset, None)
    if failure is not None:
        reason = f"not a canonical event: {failure!r}"[:300]
        error = NormalizeError(ErrorCode.WRONG_TYPE, reason)
        outputs.append(dead_letter(origin, error, event.value or b""))
        return
    arrival_ms = int(message.timestamp * 1000) if message.timestamp else None
    batch.begin_event()
    try:
        if canonical is None:
            step = pipeline.tick(
                message.partition, arrival_ms, batch, progress=tick_progress(value)
            )
        else:
            step = pipeline.process(canonical, message.partition, batch, arrival_ms)
    except Exception as exc:  # a logic bug must not stall the partition: dead-letter it
        batch.rollback_event()
        pipeline.forget_schedules()  # rebuilt from the tables
        log.exception("processing failed for %s", canonical.id if canonical else "a tick")
        error = NormalizeError(ErrorCode.INTERNAL, f"processing failed: {type(exc).__name__}")
        outputs.append(dead_letter(origin, error, event.value or b""))
        return
    outputs.extend(step.outputs)
    event_ms = canonical.ts_ms if canonical is not None else None
    await aligner.observe(message.topic, message.partition, message.offset, event_ms)
    if canonical is None:
        observed.append((step.outputs, None, None, "clock"))
    else:
        observed.append((step.outputs, canonical.source, canonical.ts_ms, "events"))


@app.agent(events_in_topic, concurrency=1)
async def process(stream):
    """Apply the stateful logic to batches of canonical events.

    Every output of a batch is sent and acknowledged by the broker, then the batch's state
    writes are applied, each partition's under one of its own events; only then are the
    batch's input offsets released for commit.
    """
    await declare_output_topics()
    changelog_writes.start()
    async for events in processed_batches(stream, settings.batch_max, _linger_s):
        await _recover(events)
        batch = Batch(pipeline.state)
        outputs_of: dict[int, list[Output]] = {}
        last_of_partition = {}
        observed: list = []
        for event in events:
            message = event.message
            decoded = _decode(event)
            if not journal.resends.admit(message.partition, message.offset, decoded.raw_position):
                continue  # in the partition's state already (app/runtime/resends.py)
            make_current(event)
            last_of_partition[message.partition] = event
            outputs = outputs_of.setdefault(message.partition, [])
            await _apply(event, decoded, batch, outputs, observed)
        captured = capture(batch, last_of_partition)
        batch.encode(dumps_value)  # serialized once, for the journal and the tables alike
        staged_of = {partition: batch.tables_of(partition) for partition in last_of_partition}
        await journal.commit(staged_of, outputs_of, last_of_partition)
        record_process(
            outputs_of,
            last_of_partition,
            observed,
            pipeline.state.series,
            pipeline.state.clock,
            captured,
        )
        metrics.observe_batch(len(events))
        metrics.observe_steps(observed)
