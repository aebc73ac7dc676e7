"""The stored alert record: its keys, a new record, its episode fields and a private copy."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from app.model.alerts import AlertInput
from app.model.events import format_time
from app.runtime.staged import StagedState


def group_key(entity: str, labels: Mapping[str, str], group_by: tuple[str, ...]) -> str:
    """`<entity>:{name="value", ...}` over the `group_by` labels the alert has (Alertmanager
    writes `<route>:{...}`; here the entity takes the route's place)."""
    names = sorted(labels) if "..." in group_by else sorted(n for n in group_by if n in labels)
    inner = ", ".join(f"{n}={orjson.dumps(labels[n]).decode()}" for n in names)
    return f"{entity}:{{{inner}}}"


def dedup_key(group: str) -> str:
    """PagerDuty `dedup_key` / Opsgenie `alias` of a group: SHA-256 hex of its key."""
    return hashlib.sha256(group.encode()).hexdigest()


def load(table: StagedState, key: str) -> dict[str, Any] | None:
    """A private copy of a stored value (StagedState hands out the stored object itself).

    Two levels deep: this stage changes a record's top-level fields and its `pend` list
    in place, and replaces every nested dict it changes (`labels`, `log`, `notified`,
    ...) instead of editing it, so the items of a list are shared safely. A deep copy (an
    orjson round trip) cost 8 % of a worker's CPU on alerts holding 250 pending inputs.
    """
    value = table.get(key)
    if not isinstance(value, dict):
        return None
    return {
        k: list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v
        for k, v in value.items()
    }


def new_alert(alert: AlertInput, group_by: tuple[str, ...]) -> dict[str, Any]:
    """The record of an alert instance not seen before."""
    return {
        "t": "alert",
        "fp": alert.fingerprint,
        "entity": alert.entity,
        "kind": alert.kind,
        "source": alert.source,
        "type": alert.type,
        "labels": dict(alert.labels),
        "group": group_key(alert.entity, alert.labels, group_by),
        "scope": alert.scope,
        "severity": alert.severity,
        **fresh_history(),
        "pend": [],
        "due": None,
    }


#: The fields of an alert record that describe its episodes (reset by `forget_history`).
_HISTORY = {
    "annotations": {},
    "first_seen": None,
    "last_seen": None,
    "starts": None,
    "count": 0,
    "status": None,
    "ends": None,
    "resolved_at": None,
    "resolved_by": None,
    "scoring": {},
    "notified": None,
    "silenced_by": [],
    "inhibited_by": [],
    "acc": 0,
    "in_group": False,
}


def fresh_history() -> dict[str, Any]:
    """The episode fields of a new alert record."""
    return {k: v.copy() if isinstance(v, dict | list) else v for k, v in _HISTORY.items()}


def forget_history(state: dict[str, Any]) -> None:
    """Reset an alert record to a new alert's, keeping its identity and waiting inputs
    (what `new_alert` gives, with its inputs still to apply)."""
    state.update(fresh_history())


def time_or_none(ts_ms: int | None) -> str | None:
    """An optional time as text."""
    return format_time(ts_ms) if ts_ms is not None else None
