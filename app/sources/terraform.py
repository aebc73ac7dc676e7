"""Terraform plans in the machine-readable form of `terraform show -json <planfile>`.

Source of truth: Terraform's "JSON Output Format" (plan representation, `format_version`
1.x; REFERENCE.md): `resource_changes[]` and `resource_drift[]`, each with `address`, `mode`,
`type`, `name`, `index`, `provider_name`, `previous_address`, `deposed`, `action_reason` and
`change{actions, before, after, after_unknown, before_sensitive, after_sensitive,
replace_paths}`; top-level `terraform_version`, `relevant_attributes` and (Terraform >= 1.5)
`timestamp`. A record is the bare plan, or an envelope `{"plan": <plan>, "time": ...,
"workspace": ...}` added by whatever ships plans (CI).

Events: one `tf_change` per `resource_changes` entry, no-op included (its `after` is the
desired state a drift stage compares against), and one `tf_drift` per `resource_drift` entry
(changes made outside Terraform, found on refresh). Entity `tf:<address>`. Values marked
sensitive in `before_sensitive` / `after_sensitive` are replaced by `****` (a null stays null:
it reveals nothing); big blobs are dropped by `compact_value`.

Time, in order: the envelope's `time`; the plan's own `timestamp`; otherwise none. Plans from
Terraform < 1.5 carry no time at all (six of the eight sample plans), and nothing else in them
dates them: no state serial time, no file times. The wall clock is ruled out (replays must
agree) and a guessed time would be a lie, so such events get `ts_ms` 0 with `time_source`
"none", every other event `time_source` "envelope" or "plan". Whoever knows when the record
arrived (the pipeline holds the broker timestamp) should substitute it for "none" before any
windowing, and shippers should prefer the envelope.

Severity: no-op and read info; create, update (and forget) low; delete and replace medium;
every drift entry medium.
"""

from __future__ import annotations

import hashlib
from typing import Any

from app.model.events import Event, event_id, parse_time
from app.sources.base import (
    check_time_range,
    compact_value,
    optional,
    require,
    require_object,
)
from app.sources.errors import ErrorCode, NormalizeError

MASK = "****"
ACTION_SEVERITY: dict[tuple[str, ...], str] = {
    ("no-op",): "info",
    ("read",): "info",
    ("create",): "low",
    ("update",): "low",
    ("forget",): "low",
    ("delete",): "medium",
    ("delete", "create"): "medium",
    ("create", "delete"): "medium",
}
PLAN_KEYS = ("resource_changes", "resource_drift", "planned_values")


class TerraformAdapter:
    """`tf_change` per planned resource change and `tf_drift` per drifted resource."""

    name = "terraform"
    family = "terraform"

    def matches(self, doc: Any) -> bool:
        if isinstance(doc, dict) and isinstance(doc.get("plan"), dict):
            doc = doc["plan"]
        return (
            isinstance(doc, dict) and "format_version" in doc and any(k in doc for k in PLAN_KEYS)
        )

    def normalize(self, doc: Any, raw: bytes) -> list[Event]:
        record = require_object(doc, "Terraform plan")
        if "plan" in record:
            plan = require(record, "plan", dict)
            envelope_time = record.get("time")
            workspace = optional(record, "workspace", str)
        else:
            plan, envelope_time, workspace = record, None, None
        ts_ms, time_source = _plan_time(envelope_time, plan.get("timestamp"))
        common = {
            "terraform_version": optional(plan, "terraform_version", str),
            "format_version": optional(plan, "format_version", str),
            "workspace": workspace,
            "time_source": time_source,
            "plan_id": hashlib.blake2b(raw, digest_size=8).hexdigest(),
        }
        relevant = _relevant_paths(optional(plan, "relevant_attributes", list, []))
        events = []
        for kind in ("resource_changes", "resource_drift"):
            for index, entry in enumerate(optional(plan, kind, list, [])):
                entry = require_object(entry, f"{kind}[{index}]")
                drift = kind == "resource_drift"
                events.append(self._event(entry, drift, ts_ms, common, relevant))
        return events

    def _event(
        self,
        entry: dict[str, Any],
        drift: bool,
        ts_ms: int,
        common: dict[str, Any],
        relevant: dict[str, list[str]],
    ) -> Event:
        address = require(entry, "address", str)
        change = require(entry, "change", dict)
        actions = require(change, "actions", list)
        if not actions or not all(isinstance(a, str) for a in actions):
            raise NormalizeError(
                ErrorCode.INVALID_VALUE, f"'{address}': change.actions must be action names"
            )
        before, after = change.get("before"), change.get("after")
        unknown = _true_paths(change.get("after_unknown"))
        changed = set(_diff_paths(before, after)) | set(unknown)
        deposed = optional(entry, "deposed", str)
        attributes: dict[str, Any] = {
            "address": address,
            "resource_type": optional(entry, "type", str),
            "resource_name": optional(entry, "name", str),
            "mode": optional(entry, "mode", str),
            "provider_name": optional(entry, "provider_name", str),
            "index": entry.get("index"),
            "module_address": optional(entry, "module_address", str),
            "previous_address": optional(entry, "previous_address", str),
            "deposed": deposed,
            "actions": actions,
            "action_reason": optional(entry, "action_reason", str),
            "before": compact_value(_mask(before, change.get("before_sensitive"))),
            "after": compact_value(_mask(after, change.get("after_sensitive"))),
            "changed_paths": sorted(changed),
            "after_unknown": unknown,
            "replace_paths": [_join(p) for p in optional(change, "replace_paths", list, []) if p],
            "relevant_paths": relevant.get(address, []),
            "drift": drift,
            **common,
        }
        kind = "tf_drift" if drift else "tf_change"
        severity = "medium" if drift else ACTION_SEVERITY.get(tuple(actions), "low")
        return Event(
            id=event_id(self.name, kind, common["plan_id"], address, deposed or ""),
            source=self.name,
            type=kind,
            ts_ms=ts_ms,
            entity=f"tf:{address}",
            severity=severity,
            attributes=attributes,
        )


def _plan_time(envelope_time: Any, plan_time: Any) -> tuple[int, str]:
    """(ts_ms, time_source): the envelope's time, the plan's timestamp, else (0, "none")."""
    for source, value in (("envelope", envelope_time), ("plan", plan_time)):
        if value is None:
            continue
        path = "time" if source == "envelope" else "timestamp"
        try:
            return check_time_range(parse_time(value), path), source
        except ValueError:
            raise NormalizeError(
                ErrorCode.INVALID_VALUE, f"'{path}' is not a timestamp: {value!r}"
            ) from None
    return 0, "none"


def _mask(value: Any, sensitive: Any) -> Any:
    """`value` with every part marked true in the parallel `sensitive` structure masked."""
    if sensitive is True:
        return MASK if value is not None else None
    if isinstance(sensitive, dict) and isinstance(value, dict):
        return {key: _mask(item, sensitive.get(key)) for key, item in value.items()}
    if isinstance(sensitive, list) and isinstance(value, list):
        return [
            _mask(item, sensitive[i] if i < len(sensitive) else None)
            for i, item in enumerate(value)
        ]
    return value


def _diff_paths(before: Any, after: Any, prefix: tuple[Any, ...] = ()) -> list[str]:
    """Dotted paths of the leaves that differ (a missing or null side counts as empty)."""
    if before == after:
        return []
    for kind in (dict, list):
        sides = (before, after)
        if any(isinstance(v, kind) for v in sides) and all(
            isinstance(v, kind) or v is None for v in sides
        ):
            return _diff_children(before or kind(), after or kind(), prefix)
    return [_join(prefix) if prefix else "*"]


def _diff_children(before: Any, after: Any, prefix: tuple[Any, ...]) -> list[str]:
    if isinstance(before, dict):
        keys: list[Any] = sorted(set(before) | set(after))
        pairs = [(k, before.get(k), after.get(k)) for k in keys]
    else:
        size = max(len(before), len(after))
        pairs = [
            (i, before[i] if i < len(before) else None, after[i] if i < len(after) else None)
            for i in range(size)
        ]
    paths: list[str] = []
    for key, old, new in pairs:
        paths.extend(_diff_paths(old, new, (*prefix, key)))
    return paths


def _true_paths(marks: Any, prefix: tuple[Any, ...] = ()) -> list[str]:
    """Dotted paths marked `true` in an after_unknown-style structure."""
    if marks is True:
        return [_join(prefix) if prefix else "*"]
    if isinstance(marks, dict):
        items = sorted(marks.items())
    elif isinstance(marks, list):
        items = list(enumerate(marks))
    else:
        return []
    return [path for key, mark in items for path in _true_paths(mark, (*prefix, key))]


def _relevant_paths(entries: list[Any]) -> dict[str, list[str]]:
    """relevant_attributes as address -> dotted attribute paths."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        resource, path = _get(entry, "resource"), _get(entry, "attribute")
        if isinstance(resource, str) and isinstance(path, list) and path:
            out.setdefault(resource, []).append(_join(path))
    return out


def _join(path: Any) -> str:
    if isinstance(path, list | tuple):
        return ".".join(str(part) for part in path)
    return str(path)


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None
