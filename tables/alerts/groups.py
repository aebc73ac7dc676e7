"""Aggregation groups (`groups` table, key `<entity>:{<group_by labels>}`): membership and the
flush timers of Alertmanager's aggregation group (group_wait, then group_interval ticks)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tables.alerts.config import DedupConfig
from tables.alerts.records import load
from tables.alerts.step import AlertStep
from tables.alerts.timers import GROUP_RANK


def new_group(key: str, state: dict[str, Any], group_by: tuple[str, ...]) -> dict[str, Any]:
    """The record of a group whose first member is the alert `state`."""
    labels = state["labels"]
    names = sorted(labels) if "..." in group_by else [n for n in group_by if n in labels]
    return {
        "t": "group",
        "key": key,
        "entity": state["entity"],
        "labels": {n: labels[n] for n in sorted(names)},
        "members": [],
        "log": None,
        "alive": False,
        "flushed": False,
        "base": None,
        "last": None,
        "next": None,
        "idle_since": None,
        "due": None,
    }


def join_group(step: AlertStep, key: str, state: dict[str, Any], now: int) -> None:
    """Put the alert in its group's store (if not there) and schedule the flush that
    will report the change, as Alertmanager's aggregation group does."""
    group_id = state["group"]
    group = load(step.groups, group_id) or new_group(group_id, state, step.config.group_by)
    if key not in group["members"]:
        group["members"] = sorted([*group["members"], key])
    state["in_group"] = True
    gw, starts = (
        step.config.group_wait_ms,
        state["starts"] if state["starts"] is not None else now,
    )
    if not group["alive"]:
        group.update(alive=True, flushed=False, base=None, idle_since=None)
        group["next"] = now if starts + gw < now else now + gw
    elif not group["flushed"]:
        if starts + gw < now:
            group["next"] = min(group["next"], now)
    else:
        last = group["last"] if group["last"] is not None else now - 1
        tick = tick_at_or_after(step.config, group, max(now, last + 1))
        group["next"] = tick if group["next"] is None else min(group["next"], tick)
    save_group(step, group_id, group)


def repeat_due(step: AlertStep, state: dict[str, Any], now: int) -> None:
    """A new sighting of a notified, firing member: make sure its group ticks when the
    repeat is due (a group with nothing new to say has no tick scheduled)."""
    group = load(step.groups, state["group"])
    if group is None or not group["flushed"] or group["next"] is not None:
        return
    interval = repeat_interval(step.config, member_states(step, group))
    if group["log"] is None or interval is None:
        return
    at = max(now, group["log"]["time"] + interval + 1)
    group["next"] = tick_at_or_after(step.config, group, at)
    save_group(step, state["group"], group)


def tick_at_or_after(config: DedupConfig, group: dict[str, Any], at: int) -> int:
    """The group's first `group_interval` tick after its first flush that is not before `at`."""
    gi, base = config.group_interval_ms, group["base"]
    steps = max(1, -(-(at - base) // gi))
    return base + steps * gi


def save_group(step: AlertStep, key: str, group: dict[str, Any], popped: bool = False) -> None:
    """Store the group and schedule its next flush (or, idle, the end of its retention)."""
    previous = group.get("due")
    if group["alive"]:
        group["due"] = group["next"]
    elif group["idle_since"] is not None:
        group["due"] = group["idle_since"] + step.config.retention_ms
    else:
        group["due"] = None
    step.groups[key] = group
    if group["due"] is not None and (popped or group["due"] != previous):
        step.schedule.push(group["due"], GROUP_RANK, key)


def member_states(step: AlertStep, group: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored records of a group's members."""
    states = (step.alerts.get(alert_key) for alert_key in group["members"])
    return [state for state in states if isinstance(state, dict)]


def repeat_interval(config: DedupConfig, states: Iterable[Mapping[str, Any]]) -> int | None:
    """How often a group of these alerts repeats (None: never): `repeat_interval` while
    any member is an incident, the findings' own interval when all are state."""
    kinds = {state["kind"] for state in states}
    if kinds and kinds <= config.state_kinds:
        return config.state_repeat_interval_ms or None
    return config.repeat_interval_ms
