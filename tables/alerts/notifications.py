"""Group flushes and Alertmanager's notification log: whether a flush notifies
(`needs_update`), the `alerts` records it sends, and the group's next useful tick."""

from __future__ import annotations

from typing import Any

from app.model.events import event_id, format_time
from app.model.outputs import Output
from tables.alerts.groups import repeat_interval, save_group, tick_at_or_after
from tables.alerts.instances import save_alert
from tables.alerts.labels import match_labels
from tables.alerts.muting import mute
from tables.alerts.records import dedup_key, load, time_or_none
from tables.alerts.silences import silence_changes
from tables.alerts.step import AlertStep


def run_group(step: AlertStep, key: str, due: int) -> None:
    """Fire a group's timer due at `due`: a flush, or forgetting an idle group."""
    group = load(step.groups, key)
    if group is None or group.get("due") is None or group["due"] > due:
        return  # stale timer
    if group["alive"]:
        # At the timer's own time, however far the clock jumped past it: a worker's clock
        # moves in steps of any size (batches, ticks; app/runtime/partition_clock.py).
        flush_group(step, key, group, due)
    elif not step.flush and not group["members"]:
        step.groups.delete(key)  # idle past retention: forget the notification log


def needs_update(
    send_resolved: bool,
    log: dict[str, Any] | None,
    firing: set[str],
    resolved: set[str],
    now: int,
    repeat_interval: int | None,
) -> bool:
    """Alertmanager's DedupStage.needsUpdate (`repeat_interval` None: changes only)."""
    if log is None:
        return bool(firing)
    if not firing <= set(log["firing"]):
        return True
    if not firing:
        return bool(log["firing"])
    if send_resolved and not resolved <= set(log["resolved"]):
        return True
    return repeat_interval is not None and log["time"] < now - repeat_interval


def flush_group(step: AlertStep, key: str, group: dict[str, Any], now: int) -> None:
    """Flush a group at `now`: notify if the log says so, drop resolved members, reschedule."""
    config = step.config
    group["last"] = now
    if not group["flushed"]:
        group["flushed"], group["base"] = True, now
    members: list[tuple[str, dict[str, Any]]] = []
    for alert_key in group["members"]:
        state = load(step.alerts, alert_key)
        if state is not None and state["status"] is not None:
            members.append((alert_key, state))
    firing, resolved = [], []
    for alert_key, state in members:
        silenced, inhibited = mute(step, state, now)
        if silenced or inhibited:
            continue
        if state["status"] == "firing":
            firing.append((alert_key, state))
        else:
            resolved.append((alert_key, state))
    log = group["log"]
    fset = {s["fp"] for _, s in firing}
    rset = {s["fp"] for _, s in resolved}
    # A repeat restates new evidence: only for alerts with sightings no notification
    # carried yet (Alertmanager's senders re-send what still fires).
    repeat = any(s["acc"] for _, s in firing)
    interval = repeat_interval(config, (state for _, state in members))
    if step.flush and interval is None and repeat:
        interval = config.repeat_interval_ms  # the last repeat of unsent inputs
    if (firing or resolved) and needs_update(
        config.send_resolved, log, fset, rset, now, interval if repeat else None
    ):
        previous = set(log["firing"]) if log else set()
        sent = firing + (resolved if config.send_resolved else [])
        for _, state in sorted(sent, key=lambda item: item[1]["fp"]):
            if state["status"] == "firing":
                notification = "repeat" if state["fp"] in previous else "firing"
            else:
                notification = "resolved"
            step.outputs.append(notification_record(step, key, state, now, notification))
            if state["acc"]:
                step.accounting["notified"] += 1
                step.accounting["folded"] += state["acc"] - 1
                state["acc"] = 0
            state["notified"] = {"time": now, "status": state["status"]}
        if sent:
            step.stats["notifications"] += 1
            step.stats["records"] += len(sent)
        group["log"] = {"firing": sorted(fset), "resolved": sorted(rset), "time": now}
    remaining = []
    for alert_key, state in members:
        if state["status"] == "firing":
            remaining.append(alert_key)
        else:  # resolved members leave the store after every flush
            if state["acc"]:
                reason = (
                    "silenced"
                    if state["silenced_by"]
                    else "inhibited"
                    if state["inhibited_by"]
                    else "folded"
                )
                step.accounting[reason] += state["acc"]
                state["acc"] = 0
            state["in_group"] = False
        if state != step.alerts.get(alert_key):
            save_alert(step, alert_key, state)
    group["members"] = remaining
    if not remaining:
        group.update(alive=False, flushed=False, next=None, idle_since=now)
    else:
        group["next"] = next_tick(step, group, members, now)
    save_group(step, key, group, popped=True)


def next_tick(
    step: AlertStep,
    group: dict[str, Any],
    members: list[tuple[str, dict[str, Any]]],
    now: int,
) -> int | None:
    """The first tick at which a flush could send something without new inputs: the
    repeat (only for alerts with sightings not yet notified), the end or start
    of a matching silence, and (unless flushing) every tick while a member is inhibited,
    since inhibition sources change outside this partition."""
    config = step.config
    reasons: list[int] = []
    log = group["log"]
    unmuted_firing = [
        s
        for _, s in members
        if s["status"] == "firing" and not s["silenced_by"] and not s["inhibited_by"]
    ]
    wants_repeat = any(s["acc"] for s in unmuted_firing)
    interval = repeat_interval(config, (state for _, state in members))
    if step.flush and interval is None and wants_repeat:
        interval = config.repeat_interval_ms  # the last repeat of unsent inputs
    if log is not None and unmuted_firing and wants_repeat and interval is not None:
        reasons.append(log["time"] + interval + 1)
    if not step.flush and any(s["inhibited_by"] for _, s in members):
        reasons.append(now + 1)
    if step.silences:
        for _, state in members:
            labels = match_labels(state["labels"], state["entity"], state["source"])
            changes = silence_changes(labels, step.silences, now)
            if changes:
                reasons.append(changes[0])
    if not reasons:
        return None
    return tick_at_or_after(config, group, max(min(reasons), now + 1))


def notification_record(
    step: AlertStep, group: str, state: dict[str, Any], now: int, notification: str
) -> Output:
    """The `alerts` record of one member in a notification."""
    score, factors = step.scorer.score(state, now)
    resolved = state["status"] == "resolved"
    value = {
        "id": event_id("alert", state["entity"], state["fp"], now, state["status"]),
        "fingerprint": state["fp"],
        "group_key": group,
        "dedup_key": dedup_key(group),
        "kind": state["kind"],
        "status": state["status"],
        "notification": notification,
        "count": state["count"],
        "first_seen": time_or_none(state["first_seen"]),
        "last_seen": time_or_none(state["last_seen"]),
        "starts_at": time_or_none(state["starts"]),
        "ends_at": time_or_none(state["resolved_at"]) if resolved else None,
        "resolved_by": state["resolved_by"] if resolved else None,
        "score": score,
        "factors": factors,
        "labels": state["labels"],
        "annotations": state["annotations"],
        "entity": state["entity"],
        "source": state["source"],
        "severity": state["severity"],
        "time": format_time(now),
    }
    return Output("alerts", state["fp"], value)
