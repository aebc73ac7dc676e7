"""Scan scopes: key `<entity>|~scope|<scope>` indexes the open findings of one scan scope and
holds the `scan_completed` inputs waiting for the clock (labels `resolutions_from_scan`)."""

from __future__ import annotations

from typing import Any

from tables.alerts.labels import ScanResolution
from tables.alerts.pending import insert_pending
from tables.alerts.records import load
from tables.alerts.step import AlertStep
from tables.alerts.timers import ALERT_RANK

SCOPE_MARK = "~scope"


def new_scope(entity: str, scope: str) -> dict[str, Any]:
    """The record of a scope not seen before."""
    return {
        "t": "scope",
        "entity": entity,
        "scope": scope,
        "open": [],
        "last_scan": None,
        "pend": [],
        "due": None,
    }


def scope_key(state: dict[str, Any]) -> str:
    """The key of an alert's scope record."""
    return f"{state['entity']}|{SCOPE_MARK}|{state['scope']}"


def receive_scan(step: AlertStep, entity: str, scan: ScanResolution) -> None:
    """Hold a completed scan in each of its scopes until the clock passes it."""
    for scope in sorted(scan.scopes):
        key = f"{entity}|{SCOPE_MARK}|{scope}"
        state = load(step.alerts, key) or new_scope(entity, scope)
        pending = {"ts_ms": scan.ts_ms, "id": scan.id, "present": sorted(scan.present)}
        insert_pending(state["pend"], pending)
        save_scope(step, key, state)


def scope_add(step: AlertStep, state: dict[str, Any], key: str) -> None:
    """List a firing finding among its scope's open ones."""
    key_of_scope = scope_key(state)
    scope = load(step.alerts, key_of_scope) or new_scope(state["entity"], state["scope"])
    if key not in scope["open"]:
        scope["open"] = sorted([*scope["open"], key])
        save_scope(step, key_of_scope, scope)


def scope_remove(step: AlertStep, state: dict[str, Any], key: str) -> None:
    """Take a finding that resolved off its scope's open ones."""
    key_of_scope = scope_key(state)
    scope = load(step.alerts, key_of_scope)
    if scope is not None and key in scope["open"]:
        scope["open"] = [k for k in scope["open"] if k != key]
        save_scope(step, key_of_scope, scope)


def save_scope(step: AlertStep, key: str, scope: dict[str, Any], popped: bool = False) -> None:
    """Store the scope (or forget it when it holds nothing) and schedule its next scan."""
    if not scope["open"] and not scope["pend"]:
        step.alerts.delete(key)
        return
    previous = scope.get("due")
    scope["due"] = scope["pend"][0]["ts_ms"] if scope["pend"] else None
    step.alerts[key] = scope
    if scope["due"] is not None and (popped or scope["due"] != previous):
        step.schedule.push(scope["due"], ALERT_RANK, key)
