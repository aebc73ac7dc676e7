"""Silences and inhibition of an alert instance: what mutes it now, and the `inhibitors`
records an alert matching an inhibit rule's source side sends when it fires or resolves."""

from __future__ import annotations

from typing import Any

from app.model.events import event_id, format_time
from app.model.outputs import Output
from tables.alerts.labels import match_labels
from tables.alerts.silences import inhibited_by, is_inhibition_source, silenced_by
from tables.alerts.step import AlertStep


def mute(step: AlertStep, state: dict[str, Any], now: int) -> tuple[list[str], list[str]]:
    """(silenced_by, inhibited_by) of an alert at `now`; also stored in `state`."""
    labels = match_labels(state["labels"], state["entity"], state["source"])
    silenced = silenced_by(labels, step.silences, now)
    rules = step.config.inhibit_rules
    inhibited = inhibited_by(labels, rules, step.inhibitors, now) if rules else []
    state["silenced_by"], state["inhibited_by"] = silenced, inhibited
    return silenced, inhibited


def send_inhibitor(step: AlertStep, state: dict[str, Any], status: str, now: int) -> None:
    """Announce on `inhibitors` that an inhibition source fires or resolved."""
    rules = step.config.inhibit_rules
    labels = match_labels(state["labels"], state["entity"], state["source"])
    if not rules or not is_inhibition_source(labels, rules):
        return
    value = {
        "id": event_id("inhibitor", state["entity"], state["fp"], now, status),
        "fingerprint": state["fp"],
        "entity": state["entity"],
        "labels": labels,
        "status": status,
        "starts_ms": state["starts"],
        "ends_ms": state["ends"] if status == "firing" else now,
        "time": format_time(now),
    }
    step.outputs.append(Output("inhibitors", state["fp"], value))
