"""Alert instances (`alerts` table, key `<entity>|<fingerprint>`): inputs held until the clock
passes them, then folded in at their own time; resolution by an explicit input, the sender's
endsAt, `resolve_timeout` or a newer scan of the finding's scope; the next timer."""

from __future__ import annotations

from typing import Any

from app.model.alerts import AlertInput
from app.runtime import spill
from tables.alerts.config import DedupConfig
from tables.alerts.groups import join_group, repeat_due
from tables.alerts.muting import mute, send_inhibitor
from tables.alerts.pending import (
    MAX_PENDING_INPUTS,
    PENDING,
    PENDING_LIMITS,
    pending_prefix,
)
from tables.alerts.records import forget_history, load, new_alert
from tables.alerts.scan_scopes import save_scope, scope_add, scope_remove
from tables.alerts.step import AlertStep
from tables.alerts.timers import ALERT_RANK


def receive(step: AlertStep, alert: AlertInput) -> None:
    """Hold one input in its alert until the clock passes it (beyond `MAX_PENDING_INPUTS`
    the oldest are applied at once)."""
    key = f"{alert.entity}|{alert.fingerprint}"
    state = load(step.alerts, key) or new_alert(alert, step.config.group_by)
    step.accounting["inputs"] += 1
    prefix = pending_prefix(key)
    until = spill.add(step.alerts, prefix, state, alert.to_dict(), PENDING, PENDING_LIMITS)
    excess = spill.count(state, PENDING) - MAX_PENDING_INPUTS
    if excess > 0:
        until = max(until or 0, spill.nth_time(step.alerts, prefix, state, excess, PENDING))
    if until is not None:
        # The clock is far behind this alert's inputs (a source read far behind the
        # others): apply the oldest now rather than grow the state without bound.
        before = spill.count(state, PENDING)
        advance_alert(step, key, state, until)
        step.stats["overflow"] += before - spill.count(state, PENDING)
        return
    save_alert(step, key, state)


def run_alert_key(step: AlertStep, key: str, due: int) -> None:
    """Fire the timer of an alert or scope record due at `due` (nothing if it moved)."""
    state = load(step.alerts, key)
    if state is None or state.get("due") is None or state["due"] > due:
        return  # stale timer
    if state.get("t") == "scope":
        advance_scope(step, key, state, due)
    else:
        advance_alert(step, key, state, due)


def advance_alert(step: AlertStep, key: str, state: dict[str, Any], now: int) -> None:
    """Apply, in time order, every input and timeout of `key` due at `now`."""
    prefix = pending_prefix(key)
    config = step.config
    while True:
        spill.refill(step.alerts, prefix, state, PENDING)  # `pend` empty: nothing spilled
        pend = state["pend"]
        next_input = pend[0]["ts_ms"] if pend else None
        ends = resolution_time(config, state) if state["status"] == "firing" else None
        if ends is not None and ends <= now and (next_input is None or ends < next_input):
            by = "ends_at" if state["ends"] is not None else "timeout"
            resolve(step, key, state, ends, by)
        elif next_input is not None and next_input <= now:
            apply_input(step, key, state, AlertInput.from_dict(pend.pop(0)))
        else:
            break
    if state["status"] is None and not state["pend"]:
        step.alerts.delete(key)  # only resolutions of an alert never seen firing
        return
    if (
        not step.flush
        and state["status"] == "resolved"
        and not state["in_group"]
        and now >= retention_due(config, state)
    ):
        if not state["pend"]:
            step.alerts.delete(key)
            return
        # Retention passed before the next input's time: that input starts the alert
        # afresh, as it would had it arrived after the record was deleted.
        forget_history(state)
    save_alert(step, key, state, popped=True)


def resolution_time(config: DedupConfig, state: dict[str, Any]) -> int | None:
    """When a firing alert resolves without new inputs (None: not by itself)."""
    if state["ends"] is not None:
        return state["ends"]
    if state["kind"] in config.timeout_kinds and state["last_seen"] is not None:
        return state["last_seen"] + config.resolve_timeout_ms
    return None


def retention_due(config: DedupConfig, state: dict[str, Any]) -> int:
    """When a resolved alert outside its group is forgotten."""
    last = max(state["resolved_at"] or 0, state["last_seen"] or 0)
    return last + config.retention_ms


def alert_due(config: DedupConfig, state: dict[str, Any]) -> int | None:
    """The alert's next timer: its next input, its resolution or the end of its retention."""
    dues = []
    if state["pend"]:
        dues.append(state["pend"][0]["ts_ms"])
    if state["status"] == "firing":
        ends = resolution_time(config, state)
        if ends is not None:
            dues.append(ends)
    elif state["status"] == "resolved" and not state["in_group"]:
        dues.append(retention_due(config, state))
    return min(dues) if dues else None


def save_alert(step: AlertStep, key: str, state: dict[str, Any], popped: bool = False) -> None:
    """Store the alert and schedule its next timer (a popped timer is always re-pushed,
    another only when `due` moved; retention never fires while flushing)."""
    previous = state.get("due")
    due = alert_due(step.config, state)
    state["due"] = due
    step.alerts[key] = state
    retention_only = state["status"] == "resolved" and not state["in_group"]
    if due is None or (step.flush and retention_only and not state["pend"]):
        return
    if popped or due != previous:
        step.schedule.push(due, ALERT_RANK, key)


def apply_input(step: AlertStep, key: str, state: dict[str, Any], alert: AlertInput) -> None:
    """Fold one input into its alert at the input's own time."""
    now = alert.ts_ms
    silenced, inhibited = mute(step, state, now)
    if silenced:
        step.accounting["silenced"] += 1
    elif inhibited:
        step.accounting["inhibited"] += 1
    else:
        state["acc"] += 1
    newest = state["last_seen"] is None or now >= state["last_seen"]
    if alert.status == "firing":
        new_episode = state["status"] != "firing"
        state["count"] += 1
        state["first_seen"] = now if state["first_seen"] is None else min(state["first_seen"], now)
        if newest:
            state["last_seen"] = now
            state["annotations"] = dict(alert.annotations)
            state["severity"] = alert.severity
            state["scoring"] = dict(alert.scoring)
            ends_changed = state["ends"] != alert.ends_ms
            state["ends"] = alert.ends_ms
        else:
            ends_changed = False
        if new_episode:
            state["status"] = "firing"
            state["starts"] = alert.starts_ms
            state["resolved_at"] = state["resolved_by"] = None
            if state["scope"]:
                scope_add(step, state, key)
        if new_episode or ends_changed:
            send_inhibitor(step, state, "firing", now)
        if new_episode or not state["in_group"]:
            join_group(step, key, state, now)
        elif not (silenced or inhibited):
            repeat_due(step, state, now)
        return
    if state["status"] == "firing":
        if newest:
            state["annotations"] = dict(alert.annotations) or state["annotations"]
        resolved_at = alert.ends_ms if alert.ends_ms is not None else now
        resolve(step, key, state, max(resolved_at, state["last_seen"] or resolved_at), "explicit")
        return
    if not (silenced or inhibited):  # nothing to resolve: absorbed as is
        state["acc"] -= 1
        step.accounting["folded"] += 1


def resolve(step: AlertStep, key: str, state: dict[str, Any], at: int, by: str) -> None:
    """Resolve a firing alert at `at` (`by`: explicit, ends_at, timeout or scan)."""
    state["status"] = "resolved"
    state["resolved_at"] = at
    state["resolved_by"] = by
    step.stats[f"resolved_{by}"] += 1
    if state["scope"] and by != "scan":
        scope_remove(step, state, key)
    send_inhibitor(step, state, "resolved", at)
    join_group(step, key, state, at)


def advance_scope(step: AlertStep, key: str, scope: dict[str, Any], now: int) -> None:
    """Resolve the open findings a scan due at `now` no longer lists."""
    while scope["pend"] and scope["pend"][0]["ts_ms"] <= now:
        scan = scope["pend"].pop(0)
        present = set(scan["present"])
        still_open = []
        for alert_key in scope["open"]:
            state = load(step.alerts, alert_key)
            if state is None or state["status"] != "firing":
                continue
            if state["fp"] in present or (state["last_seen"] or 0) > scan["ts_ms"]:
                still_open.append(alert_key)
                continue
            resolve(step, alert_key, state, scan["ts_ms"], "scan")
            save_alert(step, alert_key, state)
        scope["open"] = still_open
        scope["last_scan"] = max(scope["last_scan"] or 0, scan["ts_ms"])
    save_scope(step, key, scope, popped=True)
