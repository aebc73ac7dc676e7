"""Risk stage: risk signals keyed by service -> live risk scores and deployment scorecards.

Signals come from the process agent (findings, alerts, anomalies, drift, CI, deployments),
re-keyed by service because one service spans many entities (images, repositories, hosts).
Every `vigil.events` partition sends heartbeats with its clock; a signal is held until every
producer is past it, so scores do not depend on how the producers' signals interleave
(tables/risk.py), and scores decay and re-emit while a service is quiet. As in the process
stage, outputs are acknowledged, together with a journal record of the state writes, before
those are applied (tables/step_journal.py).
"""

from __future__ import annotations

import logging

import orjson

from agents.acking import processed_events
from agents.history import record_risk
from agents.journal import Journal
from agents.sending import send_outputs
from app import metrics
from app.faust_app import app, catalog, declare_output_topics, settings
from app.outputs import Origin, dead_letter
from app.pipeline import load_catalogue, risk_config
from app.sources.errors import ErrorCode, NormalizeError
from tables import changelog_writes, step_journal
from tables.definitions import risk_journal, risk_state
from tables.risk import RiskStage
from tables.staged import StagedState

risk_signals_topic = app.topic(
    catalog.name("risk_signals"),
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
    internal=True,
)

log = logging.getLogger(__name__)

stage = RiskStage(
    risk_config(),
    catalogue=load_catalogue(settings),
    producers=settings.partitions,
)

#: Each partition's last steps, applied again after a crash (tables/step_journal.py).
journal = Journal(risk_journal, {"risk": risk_state}, name="risk")
metrics.watch_bound("risk_signals", lambda: stage.stats["overflow"])
metrics.watch_bound("risk_journal", lambda: journal.oversize)


@app.on_partitions_revoked.connect
async def _forget_risk_schedules(sender, revoked, **kwargs) -> None:
    """Partitions may move: timer schedules are rebuilt from the table on next use."""
    stage.forget_schedules()
    journal.reset()


@app.agent(risk_signals_topic, concurrency=1)
async def risk(stream):
    """Apply each risk signal; emit scores and scorecards."""
    await declare_output_topics()
    changelog_writes.start()
    async for event in processed_events(stream):
        message = event.message
        if journal.needs_recovery(message.partition):
            await journal.redo(message.partition, stage.forget_schedules)
        try:
            signal = orjson.loads(event.value)
            if not isinstance(signal, dict) or "time_ms" not in signal:
                raise ValueError("a risk signal must be an object with time_ms")
        except (orjson.JSONDecodeError, ValueError) as exc:
            origin = Origin(message.topic, message.partition, message.offset, None)
            error = NormalizeError(ErrorCode.WRONG_TYPE, f"not a risk signal: {exc}"[:300])
            await send_outputs([dead_letter(origin, error, event.value or b"")])
            continue
        state = StagedState(risk_state)
        try:
            outputs = stage.on_signal(signal, message.partition, message.offset, state)
        except Exception as exc:  # a logic bug must not stall the partition: dead-letter it
            log.exception("risk signal %s failed", signal.get("id"))
            origin = Origin(message.topic, message.partition, message.offset, None)
            error = NormalizeError(ErrorCode.INTERNAL, f"risk stage failed: {type(exc).__name__}")
            await send_outputs([dead_letter(origin, error, event.value or b"")])
            stage.forget_schedules()
            continue
        writes = step_journal.writes_of({"risk": state})
        if writes:
            journal.write(message.partition, message.offset, writes, outputs)
        await journal.confirm_and_apply(outputs, state.commit)
        record_risk(outputs)
        metrics.observe_step(outputs, "risk")
