"""Risk stage: risk signals keyed by service -> live risk scores and deployment scorecards.

Signals come from the process agent (findings, alerts, anomalies, drift, CI, deployments),
re-keyed by service because one service spans many entities (images, repositories, hosts).
Every `vigil.events` partition sends heartbeats with its clock; a signal is held until every
producer is past it, so scores do not depend on how the producers' signals interleave
(tables/risk/stage.py), and scores decay and re-emit while a service is quiet. Signals are taken in
batches as in the process stage: outputs are acknowledged, together with a journal record of
the state writes, before those are applied (app/runtime/step_journal.py).
"""

from __future__ import annotations

import logging

import orjson

from agents.history import record_risk
from app import metrics
from app.codecs import dumps_value
from app.dead_letters import dead_letter
from app.faust_app import app, settings
from app.faust_topics import declare_output_topics, risk_signals_topic
from app.model.outputs import Origin, Output
from app.pipeline import load_catalogue
from app.runtime import changelog_writes, direct_writes
from app.runtime.acking import processed_batches
from app.runtime.current_event import make_current
from app.runtime.journal import Journal
from app.runtime.risk_clock import RiskClock
from app.runtime.staged import StagedState
from app.runtime.table_cache import cache_table, forget_cached, partition_view
from app.sources.errors import ErrorCode, NormalizeError
from tables.definitions import risk_clock_state, risk_journal, risk_state
from tables.risk.stage import RiskStage

log = logging.getLogger(__name__)

stage = RiskStage(settings.risk, catalogue=load_catalogue(settings))
#: Each partition's clock from the producers' heartbeats (app/runtime/risk_clock.py).
clock = RiskClock(stage, producers=settings.partitions)

#: The risk tables' and the journal's writes, straight to RocksDB and the changelogs
#: (app/runtime/direct_writes.py), and the tables' values cached (app/runtime/table_cache.py).
direct = direct_writes.for_agent(app, settings)
risk_table = cache_table(risk_state, settings, direct)
clock_table = cache_table(risk_clock_state, settings, direct)
#: Each partition's last steps, applied again after a crash (app/runtime/step_journal.py).
journal = Journal(
    risk_journal, {"risk": risk_table, "clock": clock_table}, name="risk", direct=direct
)
metrics.watch_bound("risk_signals", lambda: stage.stats["overflow"])
metrics.watch_bound("risk_journal", lambda: journal.oversize)


@app.on_partitions_revoked.connect
async def _forget_risk_schedules(sender, revoked, **kwargs) -> None:
    """Partitions may move: timer schedules are rebuilt from the table on next use."""
    clock.forget_schedules()
    journal.reset()
    for table in (risk_table, clock_table):
        forget_cached(table)


def _failed(message, code: ErrorCode, reason: str, raw: bytes | None) -> Output:
    """The dead letter of a signal the stage could not take."""
    origin = Origin(message.topic, message.partition, message.offset, None)
    return dead_letter(origin, NormalizeError(code, reason[:300]), raw or b"")


def _apply_signal(event, tables: dict[str, StagedState]) -> list[Output]:
    """One signal or heartbeat through the clock and the stage (`tables`: the partition's
    staged `risk` and `clock` tables); a failure becomes its dead letter and undoes the
    signal's writes, keeping the rest of the batch."""
    message = event.message
    try:
        signal = orjson.loads(event.value)
        if not isinstance(signal, dict) or "time_ms" not in signal:
            raise ValueError("a risk signal must be an object with time_ms")
    except (orjson.JSONDecodeError, ValueError) as exc:
        return [_failed(message, ErrorCode.WRONG_TYPE, f"not a risk signal: {exc}", event.value)]
    for staged in tables.values():
        staged.mark()
    try:
        return clock.on_signal(signal, message.partition, tables["risk"], tables["clock"])
    except Exception as exc:  # a logic bug must not stall the partition: dead-letter it
        log.exception("risk signal %s failed", signal.get("id"))
        for staged in tables.values():
            staged.rollback()
        clock.forget_schedules()  # rebuilt from the table and the batch's staged writes
        reason = f"risk stage failed: {type(exc).__name__}"
        return [_failed(message, ErrorCode.INTERNAL, reason, event.value)]


@app.agent(risk_signals_topic, concurrency=1)
async def risk(stream):
    """Apply batches of risk signals; emit scores and scorecards.

    As in the process stage, a batch's writes collapse to one per key and partition; its
    outputs and one journal record per partition are acknowledged before the writes are
    applied, each partition's under its last signal (Faust writes a changelog record to the
    partition of the current event).
    """
    await declare_output_topics()
    changelog_writes.start()
    linger_s = settings.batch_linger_ms / 1000
    async for events in processed_batches(stream, settings.risk_batch_max, linger_s):
        staged_of: dict[int, dict[str, StagedState]] = {}
        outputs_of: dict[int, list[Output]] = {}
        last_of_partition = {}
        for event in events:
            partition = event.message.partition
            # Faust reads a table key in the store of the current event's partition.
            make_current(event)
            if journal.needs_recovery(partition):
                for table in (risk_table, clock_table):  # recovery may have changed it
                    forget_cached(table, partition)
                await journal.redo(partition, clock.forget_schedules)
            if not journal.resends.admit(partition, event.message.offset):
                continue  # in the partition's state already (app/runtime/resends.py)
            tables = staged_of.get(partition)
            if tables is None:
                tables = staged_of[partition] = {
                    "risk": StagedState(partition_view(risk_table, partition), owner=partition),
                    "clock": StagedState(partition_view(clock_table, partition)),
                }
            last_of_partition[partition] = event
            outputs_of.setdefault(partition, []).extend(_apply_signal(event, tables))
        for tables in staged_of.values():
            for staged in tables.values():
                staged.encode(dumps_value)  # serialized once, for the journal and the tables
        await journal.commit(staged_of, outputs_of, last_of_partition)
        outputs = [out for outs in outputs_of.values() for out in outs]
        record_risk(outputs)
        metrics.observe_step(outputs, "risk")
