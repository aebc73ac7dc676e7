"""Posture per control: the `posture` table rows one event's observations update, their status
changes, and the rows aggregated per framework, control and scope for the web view.

Table `posture`, key `<framework>|<control>|<scope>|<entity>[#<subject>]`: `{status,
rules{id: {status, last_violation, last_pass}}, failing, last_violation, last_pass}`. The
status of a rule is that of its latest observation in event time (a late event never overrides
a newer one); a row fails while any of its rules fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from app.model.events import Event, event_id, format_time
from app.model.outputs import Output
from app.runtime.staged import StagedState
from tables.compliance.evaluation import Violation, scope_of
from tables.compliance.memory import copy_value
from tables.compliance.rule_pack import Rule


def posture_key(framework: str, control: str, scope: str, entity: str) -> str:
    """`<framework>|<control>|<scope>|<entity>` (entity may carry `#<subject>`)."""
    return f"{framework}|{control}|{scope}|{entity}"


def update_posture(
    event: Event,
    fails: list[tuple[Rule, Violation]],
    passes: list[tuple[Rule, str | None]],
    posture: StagedState,
    outputs: list[Output],
    k8s_cluster: str | None,
    record_passes: bool,
) -> set[tuple[str, str | None]]:
    """Apply this event's fail and pass observations to every control row they touch;
    returns the (rule, subject) pairs that flipped from fail to pass."""
    scope = scope_of(event, k8s_cluster)
    touches: dict[str, list[tuple[str, str, str | None, str, str, str]]] = {}
    observations = [(rule, v.subject, "fail") for rule, v in fails] + [
        (rule, subject, "pass") for rule, subject in passes
    ]
    for rule, subject, status in observations:
        entity = f"{event.entity}#{subject}" if subject else event.entity
        for fw, ids in sorted(rule.controls.items()):
            for control in ids:
                key = posture_key(fw, control, scope, entity)
                touches.setdefault(key, []).append((rule.id, status, subject, fw, control, entity))
    flipped: set[tuple[str, str | None]] = set()
    now = event.ts_ms
    windows = {rule.id: rule.window_ms for rule, *_ in observations}
    for key, items in sorted(touches.items()):
        row = copy_value(posture.get(key))
        before = copy_value(row)
        if row is None:
            if not record_passes and all(s == "pass" for _, s, *_ in items):
                continue  # never seen failing: nothing to record unless asked
            _, _, _, fw, control, entity = items[0]
            row = {
                "t": "posture",
                "framework": fw,
                "control": control,
                "scope": scope,
                "entity": entity,
                "status": "pass",
                "rules": {},
            }
        for rule_id, status, subject, *_ in items:
            entry = row["rules"].setdefault(
                rule_id, {"status": None, "last_violation": None, "last_pass": None}
            )
            was = entry["status"]
            name = "last_violation" if status == "fail" else "last_pass"
            if entry[name] is None or now > entry[name]:
                entry[name] = now
            window = windows.get(rule_id)
            if window is not None and entry["last_violation"] is not None:
                entry["expires"] = entry["last_violation"] + window
            entry["status"] = _status(entry)
            if was != entry["status"] and was == "fail":
                flipped.add((rule_id, subject))
        _summarise(row)
        if row == before:
            continue
        posture[key] = row
        if before is None or before["status"] != row["status"]:
            outputs.append(_posture_output(key, row, event))
    return flipped


def _posture_output(key: str, row: dict[str, Any], event: Event) -> Output:
    value = {
        "id": event_id("posture", key, row["status"], event.id),
        "key": key,
        "framework": row["framework"],
        "control": row["control"],
        "scope": row["scope"],
        "entity": row["entity"],
        "status": row["status"],
        "failing_rules": row["failing"],
        "last_violation": _time(row["last_violation"]),
        "last_pass": _time(row["last_pass"]),
        "time": event.time,
    }
    return Output("posture", key, value)


def _status(entry: Mapping[str, Any]) -> str:
    """fail when the latest observation (event time) is a violation; a tie counts as fail."""
    last_violation, last_pass = entry.get("last_violation"), entry.get("last_pass")
    if last_violation is not None and (last_pass is None or last_violation >= last_pass):
        return "fail"
    return "pass"


def _summarise(row: dict[str, Any]) -> None:
    rules = row["rules"]
    row["failing"] = sorted(rid for rid, entry in rules.items() if entry["status"] == "fail")
    row["status"] = "fail" if row["failing"] else "pass"
    violations = [e["last_violation"] for e in rules.values() if e["last_violation"] is not None]
    passes = [e["last_pass"] for e in rules.values() if e["last_pass"] is not None]
    row["last_violation"] = max(violations) if violations else None
    row["last_pass"] = max(passes) if passes else None


def _time(ts_ms: int | None) -> str | None:
    return format_time(ts_ms) if ts_ms is not None else None


def _control_order(control: str) -> tuple[Any, ...]:
    """Natural order: AC-2 < AC-6 < AC-6(2) < AC-14; 1.2 < 1.10; 10.2.1 < 10.2.1.5."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", control))


def effective_status(entry: Mapping[str, Any], now_ms: int | None = None) -> str:
    """A rule entry's status at `now_ms`: a failure past its window (`expires`) has lapsed."""
    status = entry.get("status") or "pass"
    expires = entry.get("expires")
    if status == "fail" and now_ms is not None and expires is not None and expires <= now_ms:
        return "pass"
    return status


def posture_rows(
    items: Iterable[tuple[str, Any]], now_ms: int | None = None, max_entities: int = 20
) -> list[dict[str, Any]]:
    """Aggregate `posture` table items into one row per framework, control and scope.

    Each row: `{framework, control, scope, status (fail if any entity fails), failing,
    passing (entity counts), failing_entities (first `max_entities`, sorted), rules (failing
    rule ids), last_violation, last_pass}`, sorted by framework, control, scope. With `now_ms`
    (the partition watermark, say), failures of rules without a `pass` condition lapse once
    their window has passed.
    """
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for _, row in items:
        if not isinstance(row, dict) or row.get("t") != "posture":
            continue
        gkey = (row["framework"], row["control"], row["scope"])
        group = groups.setdefault(
            gkey,
            {
                "framework": gkey[0],
                "control": gkey[1],
                "scope": gkey[2],
                "status": "pass",
                "failing": 0,
                "passing": 0,
                "failing_entities": [],
                "rules": set(),
                "last_violation": None,
                "last_pass": None,
            },
        )
        failing = sorted(
            rid
            for rid, entry in (row.get("rules") or {}).items()
            if effective_status(entry, now_ms) == "fail"
        )
        if failing:
            group["failing"] += 1
            group["status"] = "fail"
            group["failing_entities"].append(row["entity"])
            group["rules"].update(failing)
        else:
            group["passing"] += 1
        for name in ("last_violation", "last_pass"):
            value = row.get(name)
            if value is not None and (group[name] is None or value > group[name]):
                group[name] = value
    out = []
    for gkey in sorted(groups, key=lambda k: (k[0], _control_order(k[1]), k[2])):
        group = groups[gkey]
        group["failing_entities"] = sorted(group["failing_entities"])[:max_entities]
        group["rules"] = sorted(group["rules"])
        group["last_violation"] = _time(group["last_violation"])
        group["last_pass"] = _time(group["last_pass"])
        out.append(group)
    return out
