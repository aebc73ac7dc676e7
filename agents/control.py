"""Control stage: commands on `vigil.control` -> silences (global table) + the audit trail.

Commands are JSON:
- `{"command": "silence.create", "silence": {...}, "by"?, "why"?}`
- `{"command": "silence.expire", "id", "at", "by", "why"?}`
- `{"command": "policy.reload", "by", "why"?}`: written to the `policy` global table, which
  every worker watches (`_reload_policies`): each reloads its Rego policies; a set that does
  not load is logged and the previous one keeps running on that worker
- `{"command": "audit.append", "who", "what", "why", "details"?}` (gate decisions, reloads)

The control topic has a single partition, so one agent instance sees every command in order
and keeps one hash chain on `vigil.audit` (tables/control/audit.py). Each command is one step of the
commit protocol every state-writing agent uses (app/runtime/journal.py): the audit record is
acknowledged by the broker together with a journal record of the silence, policy and chain-head
writes before those are applied, so a crash repeats a record (same seq and hash) rather than
losing one, and a command read again is skipped. Invalid commands go to the dead-letter topic
with the reason; nothing is applied half-way.
"""

from __future__ import annotations

import logging

import orjson

from agents.process import pipeline
from app import metrics
from app.dead_letters import dead_letter
from app.faust_app import app
from app.faust_topics import control_topic, declare_output_topics
from app.model.events import format_time
from app.model.outputs import Origin, Output
from app.runtime import changelog_writes
from app.runtime.acking import processed_events
from app.runtime.current_event import make_current
from app.runtime.journal import Journal
from app.runtime.staged import StagedState
from app.sources.errors import ErrorCode, NormalizeError
from tables.control.audit import append
from tables.control.commands import apply_command, audit_entry
from tables.definitions import audit_state, control_journal, policy_state, silences

RECENT = 200
#: How often each worker looks for a new policy reload request.
POLICY_CHECK_S = 2.0

log = logging.getLogger(__name__)


#: The control agent's last step, applied again after a crash (app/runtime/journal.py).
journal = Journal(
    control_journal,
    {"silences": silences, "policy": policy_state, "audit": audit_state},
    name="control",
)


@app.on_partitions_revoked.connect
async def _forget_control_journal(sender, revoked, **kwargs) -> None:
    """The control partition may move: its journal is applied again before its next command."""
    journal.reset()


def _apply(message, raw: bytes, staged: dict[str, StagedState]) -> list[Output]:
    """One command against the staged tables: its audit record, or its dead letter (and no
    writes) when it is invalid."""
    when = format_time(int(message.timestamp * 1000)) if message.timestamp else None
    try:
        command = orjson.loads(raw)
        changes = apply_command(command, staged["silences"])
        who, what, why, details = audit_entry(command, changes)
    except (orjson.JSONDecodeError, ValueError) as exc:
        origin = Origin(message.topic, message.partition, message.offset, None)
        error = NormalizeError(ErrorCode.INVALID_VALUE, str(exc)[:500])
        return [dead_letter(origin, error, raw)]
    audit = staged["audit"]
    record = append(audit.get("head"), who, what, when or "", why, details)
    for key, value in changes.items():
        staged["silences"][key] = value
    if command.get("command") == "policy.reload":
        staged["policy"]["reload"] = {"seq": message.offset, "by": who, "at": when}
    audit["head"] = record
    audit["recent"] = [*(audit.get("recent") or [])[-(RECENT - 1) :], record]
    return [Output("audit", None, record)]


@app.agent(control_topic, concurrency=1)
async def control(stream):
    """Apply each control command and append it to the audit trail."""
    await declare_output_topics()
    changelog_writes.start()
    async for event in processed_events(stream):
        message = event.message
        partition = message.partition
        make_current(event)
        if journal.needs_recovery(partition):
            await journal.redo(partition, lambda: None)
        if not journal.resends.admit(partition, message.offset):
            continue  # applied before a crash (app/runtime/resends.py)
        raw = event.value if isinstance(event.value, bytes) else b""
        staged = {name: StagedState(table) for name, table in journal.tables.items()}
        outputs = _apply(message, raw, staged)
        await journal.commit({partition: staged}, {partition: outputs}, {partition: event})
        metrics.observe_step(outputs, "control", topic="control")


#: The last reload request this worker applied (its control offset); -1 before any.
_applied = {"seq": -1}


@app.timer(interval=POLICY_CHECK_S)
async def _reload_policies() -> None:
    """Reload this worker's Rego policies when the table holds a request it has not applied
    (after a start, the last request once more: the same files give the same set, cached)."""
    request = policy_state.get("reload") or {}
    seq = request.get("seq", -1)
    if seq <= _applied["seq"]:
        return
    _applied["seq"] = seq
    result = pipeline.policies.reload()
    log.info(
        "policy reload #%s by %s: %s",
        seq,
        request.get("by"),
        f"loaded {result.policies} policies ({result.digest[:12]})"
        if result.ok
        else f"rejected, previous set kept: {result.error}",
    )
