"""Control stage: commands on `vigil.control` -> silences (global table) + the audit trail.

Commands are JSON:
- `{"command": "silence.create", "silence": {...}, "by"?, "why"?}`
- `{"command": "silence.expire", "id", "at", "by", "why"?}`
- `{"command": "policy.reload", "by", "why"?}`: written to the `policy` global table, which
  every worker watches (`_reload_policies`): each reloads its Rego policies; a set that does
  not load is logged and the previous one keeps running on that worker
- `{"command": "audit.append", "who", "what", "why", "details"?}` (gate decisions, reloads)

The control topic has a single partition, so one agent instance sees every command in order
and keeps one hash chain on `vigil.audit` (tables/audit.py). For each command the audit record
is acknowledged by the broker before the silence and the chain head are written, so a crash
repeats a record (same seq and hash) rather than losing one. Invalid commands go to the
dead-letter topic with the reason; nothing is applied half-way.
"""

from __future__ import annotations

import logging

import orjson

from agents.process import pipeline
from app import metrics
from app.events import format_time
from app.faust_app import app
from app.faust_topics import control_topic, declare_output_topics
from app.outputs import Origin, Output, dead_letter
from app.runtime.acking import processed_events
from app.runtime.sending import send_and_confirm, send_outputs
from app.sources.errors import ErrorCode, NormalizeError
from tables.audit import append
from tables.control import apply_command, audit_entry
from tables.definitions import audit_state, policy_state, silences

RECENT = 200
#: How often each worker looks for a new policy reload request.
POLICY_CHECK_S = 2.0

log = logging.getLogger(__name__)


@app.agent(control_topic, concurrency=1)
async def control(stream):
    """Apply each control command and append it to the audit trail."""
    await declare_output_topics()
    async for event in processed_events(stream):
        message = event.message
        raw = event.value if isinstance(event.value, bytes) else b""
        head = audit_state.get("head")
        if head is not None and head.get("offset", -1) >= message.offset:
            continue  # applied before a crash: its record is already in the chain
        when = format_time(int(message.timestamp * 1000)) if message.timestamp else None
        try:
            command = orjson.loads(raw)
            changes = apply_command(command, silences)
            who, what, why, details = audit_entry(command, changes)
        except (orjson.JSONDecodeError, ValueError) as exc:
            origin = Origin(message.topic, message.partition, message.offset, None)
            error = NormalizeError(ErrorCode.INVALID_VALUE, str(exc)[:500])
            outputs = [dead_letter(origin, error, raw)]
            await send_outputs(outputs)
            metrics.observe_step(outputs, "control", topic="control")
            continue
        record = append(head, who, what, when or "", why, details)
        await send_and_confirm([Output("audit", None, record)])
        for key, value in changes.items():
            silences[key] = value
        if command.get("command") == "policy.reload":
            policy_state["reload"] = {"seq": message.offset, "by": who, "at": when}
        audit_state["head"] = {**record, "offset": message.offset}
        metrics.observe_step((Output("audit", None, record),), "control", topic="control")
        recent = audit_state.get("recent") or []
        audit_state["recent"] = [*recent[-(RECENT - 1) :], record]


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
