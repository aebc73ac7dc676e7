"""Alert deduplication, grouping and notification with Prometheus Alertmanager's semantics.

Alert-like events (tables/alert_labels.py) become alert instances identified by fingerprint.
Everything about them lives in the partition of their entity, so no extra topic hop is needed:

- `alerts` table, key `<entity>|<fingerprint>`: one alert instance (see `_new_alert`): first
  and last sighting, count, status, `ends` (the sender's endsAt), last notification, group key,
  labels, annotations, severity, scoring inputs, `silenced_by` / `inhibited_by`, the inputs
  still waiting for the watermark (`pend`, the earliest `INLINE_PENDING`; later ones in spill
  records `<entity>|<fingerprint>|~pend|<bucket>`, app/runtime/spill.py), and the next timer
  (`due`). Key `<entity>|~scope|<scope>` indexes the open findings of one scan scope (see
  alert_labels `resolutions_from_scan`).
- `groups` table, key `<entity>:{<group_by labels>}`: one aggregation group and Alertmanager's
  notification log for it (`log`: fingerprints of the firing and resolved alerts last sent and
  the time), the member alerts, the next flush (`next`) and the tick grid (`base`).

Time is event time. The caller passes the partition watermark (the highest event time seen on
the partition); the stage's clock is `watermark - slack_ms`. Inputs newer than the clock wait in
state and are applied in event-time order (at equal times firing before resolved, then by input
id) as the clock passes them, so any arrival order within the slack gives the same
notifications, at any replay speed. Timers run on an in-memory heap (`TimerSchedule`) rebuilt
from the tables' `due` fields after a restart.

Notification rules (Alertmanager dispatch.go and notify.go `DedupStage.needsUpdate`):
- a group's first flush comes `group_wait` after its first alert (at once if that alert's
  startsAt is older than `group_wait`), then it flushes on `group_interval` ticks;
- a flush notifies when there is no log entry and something fires; when a firing alert is not
  in the log's firing set; when nothing fires any more but the log had firing alerts; when
  `send_resolved` is on and an alert resolved that the log did not list as resolved; otherwise
  only when the log entry is older than `repeat_interval` (strictly, so with the defaults
  repeats come every 4h05m: the first tick after 4h) and a firing member was sighted since
  the last notification (a repeat restates new evidence: a problem that keeps firing keeps
  being sighted, so it repeats every interval; after a clock jump over many intervals
  without sightings, one repeat goes out, not one per interval);
- resolved members leave the group after every flush, notified or not, so an alert that
  resolves within `group_wait` sends nothing; silenced and inhibited members are left out of
  both sets (and nothing is sent when every member is muted).
Ticks that cannot change anything are skipped, which changes no output.

Resolution: an explicit resolved input; the sender's endsAt passing; `resolve_timeout` without
a new sighting for the kinds that repeat while the problem lasts (`timeout_kinds`: runtime,
prom without endsAt, anomaly, violation); for scanner findings a newer `scan_completed` of the
same scope that no longer lists the finding (findings never time out).

Outputs: on `alerts` (key fingerprint) one record per alert included in a notification:
`{id, fingerprint, group_key, dedup_key, kind, status, notification (firing|repeat|resolved),
count, first_seen, last_seen, starts_at, ends_at, score, factors, labels, annotations, entity,
source, severity, time}`; `id` = event_id over entity, fingerprint, notification time and status;
`dedup_key` = SHA-256 of the group key (PagerDuty `dedup_key`, Opsgenie `alias`). On
`inhibitors` (key fingerprint), for alerts matching an inhibit rule's source side, a record with
`status` firing when such an alert starts firing and resolved when it resolves; feed them to a
global table with `tables.silences.apply_inhibitor` and pass that table as `inhibitors`.

Accounting (`AlertStage.accounting`): every input alert is counted once as `inputs` and, once
its fate is known, as exactly one of `notified` (the first input carried by a notification
record), `folded` (the other inputs absorbed into that record, inputs whose alert resolved
before any notification was due, and resolutions of alerts that were not firing), `silenced`
or `inhibited` (muted when it arrived). Inputs not yet carried by any notification are held in
the alert's `acc` field; `flush` sends a last repeat for alerts that have some.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.events import Event, event_id, format_time
from app.outputs import Output
from app.runtime import spill
from app.runtime.staged import StagedState
from tables.alert_labels import (
    AlertInput,
    ScanResolution,
    alert_from_event,
    match_labels,
    resolutions_from_scan,
)
from tables.alert_scoring import Scorer
from tables.silences import (
    InhibitRule,
    inhibited_by,
    is_inhibition_source,
    silence_changes,
    silenced_by,
)

#: A watermark at or beyond this is "end of input" (`flush`).
FOREVER = 2**62
SCOPE_MARK = "~scope"
_ALERT_RANK = 0  # alert and scope timers run before group flushes due at the same time
_GROUP_RANK = 1


#: Most inputs one alert holds while they wait for the partition clock; beyond it the oldest
#: are applied at once (`stats["overflow"]`), in time order but ahead of the clock.
MAX_PENDING_INPUTS = 250
#: Waiting inputs kept in the alert's record (the earliest); later ones wait in spill records
#: of `PENDING_BUCKET_MS` of event time (at most `PENDING_BUCKET_MAX` inputs, ~1 KB each), so
#: an input that waits rewrites two small records, not every input held: with all of them
#: inline a backlog rewrote up to 250 KB per alert and batch (docs/performance.md).
INLINE_PENDING = 16
PENDING_BUCKET_MS = 1_000
PENDING_BUCKET_MAX = 250
PENDING_MARK = "~pend"


@dataclass(frozen=True, slots=True)
class DedupConfig:
    """Grouping and timing, Alertmanager's route defaults unless noted (all times in ms)."""

    #: Labels that define a group within an entity; `("...",)` = every label, `()` = one group.
    group_by: tuple[str, ...] = ("alertname",)
    group_wait_ms: int = 30_000
    group_interval_ms: int = 300_000
    repeat_interval_ms: int = 4 * 3_600_000
    #: Silence after which an alert of `timeout_kinds` without endsAt counts as resolved.
    resolve_timeout_ms: int = 300_000
    send_resolved: bool = True
    #: How far behind the watermark the stage's clock runs (Vigil's; 0 = apply at once).
    slack_ms: int = 0
    #: How long resolved alerts and idle groups' logs are kept (Alertmanager's nflog: 120h).
    retention_ms: int = 120 * 3_600_000
    timeout_kinds: frozenset[str] = frozenset({"runtime", "prom", "anomaly", "violation"})
    #: Kinds that are state rather than incidents (a finding is open until a rescan or a fix
    #: resolves it): they notify when they open, resolve or reopen, and repeat only every
    #: `state_repeat_interval_ms` (0: never), as an Alertmanager route of their own would.
    state_kinds: frozenset[str] = frozenset({"finding", "ci"})
    state_repeat_interval_ms: int = 0
    inhibit_rules: tuple[InhibitRule, ...] = ()

    def __post_init__(self) -> None:
        if self.group_interval_ms <= 0 or self.repeat_interval_ms <= 0:
            raise ValueError("group_interval and repeat_interval must be positive")
        if min(self.group_wait_ms, self.resolve_timeout_ms, self.slack_ms) < 0:
            raise ValueError("group_wait, resolve_timeout and slack must not be negative")
        if self.state_repeat_interval_ms < 0:
            raise ValueError("the findings' repeat interval must not be negative (0: off)")
        if self.retention_ms <= 0:
            raise ValueError("retention must be positive")


class TimerSchedule:
    """In-memory min-heap of (due, rank, key) timers for one partition.

    Alert and scope keys (table `alerts`) have rank 0, group keys (table `groups`) rank 1, so
    at equal times alert changes land before the flush that reports them. Entries go stale
    when a timer moves; the stage checks each popped entry against the state's `due`.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str]] = []

    def push(self, due: int, rank: int, key: str) -> None:
        heapq.heappush(self._heap, (due, rank, key))

    def pop_due(self, clock: int) -> tuple[int, int, str] | None:
        """The earliest timer due at `clock`, or None."""
        if self._heap and self._heap[0][0] <= clock:
            return heapq.heappop(self._heap)
        return None

    def __len__(self) -> int:
        return len(self._heap)

    @classmethod
    def rebuild(cls, items: Iterable[tuple[str, Any]]) -> TimerSchedule:
        """A schedule from one partition's `(key, value)` items of the alerts and groups tables
        (chain both); each value's `t` says which table it belongs to."""
        schedule = cls()
        for key, value in items:
            if not isinstance(value, dict):
                continue
            due = value.get("due")
            if isinstance(due, int):
                rank = _GROUP_RANK if value.get("t") == "group" else _ALERT_RANK
                schedule.push(due, rank, key)
        return schedule


def group_key(entity: str, labels: Mapping[str, str], group_by: tuple[str, ...]) -> str:
    """`<entity>:{name="value", ...}` over the `group_by` labels the alert has (Alertmanager
    writes `<route>:{...}`; here the entity takes the route's place)."""
    names = sorted(labels) if "..." in group_by else sorted(n for n in group_by if n in labels)
    inner = ", ".join(f"{n}={orjson.dumps(labels[n]).decode()}" for n in names)
    return f"{entity}:{{{inner}}}"


def dedup_key(group: str) -> str:
    """PagerDuty `dedup_key` / Opsgenie `alias` of a group: SHA-256 hex of its key."""
    return hashlib.sha256(group.encode()).hexdigest()


def _load(table: StagedState, key: str) -> dict[str, Any] | None:
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


@dataclass(slots=True)
class _Ctx:
    """The tables and schedule of one call."""

    alerts: StagedState
    groups: StagedState
    schedule: TimerSchedule
    flush: bool
    outputs: list[Output] = field(default_factory=list)
    clock: int = 0


class AlertStage:
    """Alertmanager-style dedup, grouping, muting and notification over staged state."""

    def __init__(
        self,
        config: DedupConfig | None = None,
        scorer: Scorer | None = None,
        silences: Mapping[str, Mapping[str, Any]] | None = None,
        inhibitors: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.config = config or DedupConfig()
        self.scorer = scorer or Scorer()
        #: Global, read-only: silence id -> `tables.silences.parse_silence` result.
        self.silences: Mapping[str, Mapping[str, Any]] = silences if silences is not None else {}
        #: Global, read-only: fingerprint -> firing inhibition source (the `inhibitors` topic).
        self.inhibitors: Mapping[str, Mapping[str, Any]] = (
            inhibitors if inhibitors is not None else {}
        )
        #: inputs / notified / folded / silenced / inhibited (see the module docstring).
        self.accounting: Counter[str] = Counter()
        #: notifications (group notifications sent), records, resolved_<how>.
        self.stats: Counter[str] = Counter()

    # ---- entry points ------------------------------------------------------------------

    def on_event(
        self,
        event: Event,
        watermark: int | None,
        alerts: StagedState,
        groups: StagedState,
        schedule: TimerSchedule,
    ) -> list[Output]:
        """Take in one event (alert-like, `scan_completed` or other), then fire due timers."""
        self.receive_event(event, alerts, groups, schedule)
        mark = event.ts_ms if watermark is None else watermark
        return self.on_watermark(mark, alerts, groups, schedule)

    def receive_event(
        self,
        event: Event,
        alerts: StagedState,
        groups: StagedState,
        schedule: TimerSchedule,
    ) -> None:
        """Take in one event's alert input, if any, without firing timers (`on_watermark`)."""
        ctx = _Ctx(alerts, groups, schedule, flush=False)
        alert = alert_from_event(event)
        if alert is not None:
            self._receive(alert, ctx)
        else:
            scan = resolutions_from_scan(event)
            if scan is not None:
                self._receive_scan(event.entity, scan, ctx)

    def receive_alert(
        self,
        alert: AlertInput,
        alerts: StagedState,
        groups: StagedState,
        schedule: TimerSchedule,
    ) -> None:
        """Take in one alert built elsewhere without firing timers (`on_watermark`)."""
        self._receive(alert, _Ctx(alerts, groups, schedule, flush=False))

    def on_alert(
        self,
        alert: AlertInput,
        watermark: int | None,
        alerts: StagedState,
        groups: StagedState,
        schedule: TimerSchedule,
    ) -> list[Output]:
        """Take in one alert built elsewhere (anomalies), then fire due timers."""
        self.receive_alert(alert, alerts, groups, schedule)
        mark = alert.ts_ms if watermark is None else watermark
        return self.on_watermark(mark, alerts, groups, schedule)

    def on_watermark(
        self,
        watermark: int | float,
        alerts: StagedState,
        groups: StagedState,
        schedule: TimerSchedule,
    ) -> list[Output]:
        """Fire every timer due at `watermark - slack_ms`; calling it again does nothing."""
        flush = watermark >= FOREVER
        clock = FOREVER if flush else int(watermark) - self.config.slack_ms
        ctx = _Ctx(alerts, groups, schedule, flush=flush, clock=clock)
        while (item := schedule.pop_due(clock)) is not None:
            due, rank, key = item
            if rank == _GROUP_RANK:
                self._run_group(key, due, ctx)
            else:
                self._run_alert_key(key, due, ctx)
        return ctx.outputs

    def flush(
        self, alerts: StagedState, groups: StagedState, schedule: TimerSchedule
    ) -> list[Output]:
        """End of input (offline): apply every waiting input and fire every timer as if the
        watermark were +inf, without endless repeats: a group sends one last repeat only for
        alerts with inputs no notification has carried yet."""
        return self.on_watermark(math.inf, alerts, groups, schedule)

    # ---- inputs -------------------------------------------------------------------------

    def _receive(self, alert: AlertInput, ctx: _Ctx) -> None:
        key = f"{alert.entity}|{alert.fingerprint}"
        state = _load(ctx.alerts, key) or self._new_alert(alert)
        self.accounting["inputs"] += 1
        prefix = _pending_prefix(key)
        until = spill.add(ctx.alerts, prefix, state, alert.to_dict(), PENDING, _PENDING_LIMITS)
        excess = spill.count(state, PENDING) - MAX_PENDING_INPUTS
        if excess > 0:
            until = max(until or 0, spill.nth_time(ctx.alerts, prefix, state, excess, PENDING))
        if until is not None:
            # The clock is far behind this alert's inputs (a source read far behind the
            # others): apply the oldest now rather than grow the state without bound.
            before = spill.count(state, PENDING)
            self._advance_alert(key, state, until, ctx)
            self.stats["overflow"] += before - spill.count(state, PENDING)
            return
        self._save_alert(key, state, ctx)

    def _receive_scan(self, entity: str, scan: ScanResolution, ctx: _Ctx) -> None:
        for scope in sorted(scan.scopes):
            key = f"{entity}|{SCOPE_MARK}|{scope}"
            state = _load(ctx.alerts, key) or self._new_scope(entity, scope)
            pending = {"ts_ms": scan.ts_ms, "id": scan.id, "present": sorted(scan.present)}
            _insert_pending(state["pend"], pending)
            self._save_scope(key, state, ctx)

    def _new_alert(self, alert: AlertInput) -> dict[str, Any]:
        return {
            "t": "alert",
            "fp": alert.fingerprint,
            "entity": alert.entity,
            "kind": alert.kind,
            "source": alert.source,
            "type": alert.type,
            "labels": dict(alert.labels),
            "group": group_key(alert.entity, alert.labels, self.config.group_by),
            "scope": alert.scope,
            "severity": alert.severity,
            **_fresh_history(),
            "pend": [],
            "due": None,
        }

    @staticmethod
    def _new_scope(entity: str, scope: str) -> dict[str, Any]:
        return {
            "t": "scope",
            "entity": entity,
            "scope": scope,
            "open": [],
            "last_scan": None,
            "pend": [],
            "due": None,
        }

    # ---- alert timers --------------------------------------------------------------------

    def _run_alert_key(self, key: str, due: int, ctx: _Ctx) -> None:
        state = _load(ctx.alerts, key)
        if state is None or state.get("due") is None or state["due"] > due:
            return  # stale timer
        if state.get("t") == "scope":
            self._advance_scope(key, state, due, ctx)
        else:
            self._advance_alert(key, state, due, ctx)

    def _advance_alert(self, key: str, state: dict[str, Any], now: int, ctx: _Ctx) -> None:
        """Apply, in time order, every input and timeout of `key` due at `now`."""
        prefix = _pending_prefix(key)
        while True:
            spill.refill(ctx.alerts, prefix, state, PENDING)  # `pend` empty: nothing spilled
            pend = state["pend"]
            next_input = pend[0]["ts_ms"] if pend else None
            ends = self._resolution_time(state) if state["status"] == "firing" else None
            if ends is not None and ends <= now and (next_input is None or ends < next_input):
                by = "ends_at" if state["ends"] is not None else "timeout"
                self._resolve(key, state, ends, by, ctx)
            elif next_input is not None and next_input <= now:
                self._apply(key, state, AlertInput.from_dict(pend.pop(0)), ctx)
            else:
                break
        if state["status"] is None and not state["pend"]:
            ctx.alerts.delete(key)  # only resolutions of an alert never seen firing
            return
        if (
            not ctx.flush
            and state["status"] == "resolved"
            and not state["in_group"]
            and now >= self._retention_due(state)
        ):
            if not state["pend"]:
                ctx.alerts.delete(key)
                return
            # Retention passed before the next input's time: that input starts the alert
            # afresh, as it would had it arrived after the record was deleted.
            _forget_history(state)
        self._save_alert(key, state, ctx, popped=True)

    def _resolution_time(self, state: dict[str, Any]) -> int | None:
        if state["ends"] is not None:
            return state["ends"]
        if state["kind"] in self.config.timeout_kinds and state["last_seen"] is not None:
            return state["last_seen"] + self.config.resolve_timeout_ms
        return None

    def _retention_due(self, state: dict[str, Any]) -> int:
        last = max(state["resolved_at"] or 0, state["last_seen"] or 0)
        return last + self.config.retention_ms

    def _alert_due(self, state: dict[str, Any]) -> int | None:
        dues = []
        if state["pend"]:
            dues.append(state["pend"][0]["ts_ms"])
        if state["status"] == "firing":
            ends = self._resolution_time(state)
            if ends is not None:
                dues.append(ends)
        elif state["status"] == "resolved" and not state["in_group"]:
            dues.append(self._retention_due(state))
        return min(dues) if dues else None

    def _save_alert(self, key: str, state: dict[str, Any], ctx: _Ctx, popped: bool = False) -> None:
        """Store the alert and schedule its next timer (a popped timer is always re-pushed,
        another only when `due` moved; retention never fires while flushing)."""
        previous = state.get("due")
        due = self._alert_due(state)
        state["due"] = due
        ctx.alerts[key] = state
        retention_only = state["status"] == "resolved" and not state["in_group"]
        if due is None or (ctx.flush and retention_only and not state["pend"]):
            return
        if popped or due != previous:
            ctx.schedule.push(due, _ALERT_RANK, key)

    def _mute(self, state: dict[str, Any], now: int) -> tuple[list[str], list[str]]:
        """(silenced_by, inhibited_by) of an alert at `now`; also stored in `state`."""
        labels = match_labels(state["labels"], state["entity"], state["source"])
        silenced = silenced_by(labels, self.silences, now)
        inhibited = (
            inhibited_by(labels, self.config.inhibit_rules, self.inhibitors, now)
            if self.config.inhibit_rules
            else []
        )
        state["silenced_by"], state["inhibited_by"] = silenced, inhibited
        return silenced, inhibited

    def _apply(self, key: str, state: dict[str, Any], alert: AlertInput, ctx: _Ctx) -> None:
        """Fold one input into its alert at the input's own time."""
        now = alert.ts_ms
        silenced, inhibited = self._mute(state, now)
        if silenced:
            self.accounting["silenced"] += 1
        elif inhibited:
            self.accounting["inhibited"] += 1
        else:
            state["acc"] += 1
        newest = state["last_seen"] is None or now >= state["last_seen"]
        if alert.status == "firing":
            new_episode = state["status"] != "firing"
            state["count"] += 1
            state["first_seen"] = (
                now if state["first_seen"] is None else min(state["first_seen"], now)
            )
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
                    self._scope_add(state, key, ctx)
            if new_episode or ends_changed:
                self._inhibitor(state, "firing", now, ctx)
            if new_episode or not state["in_group"]:
                self._join_group(key, state, now, ctx)
            elif not (silenced or inhibited):
                self._repeat_due(state, now, ctx)
            return
        if state["status"] == "firing":
            if newest:
                state["annotations"] = dict(alert.annotations) or state["annotations"]
            resolved_at = alert.ends_ms if alert.ends_ms is not None else now
            self._resolve(
                key, state, max(resolved_at, state["last_seen"] or resolved_at), "explicit", ctx
            )
            return
        if not (silenced or inhibited):  # nothing to resolve: absorbed as is
            state["acc"] -= 1
            self.accounting["folded"] += 1

    def _resolve(self, key: str, state: dict[str, Any], at: int, by: str, ctx: _Ctx) -> None:
        state["status"] = "resolved"
        state["resolved_at"] = at
        state["resolved_by"] = by
        self.stats[f"resolved_{by}"] += 1
        if state["scope"] and by != "scan":
            self._scope_remove(state, key, ctx)
        self._inhibitor(state, "resolved", at, ctx)
        self._join_group(key, state, at, ctx)

    def _inhibitor(self, state: dict[str, Any], status: str, now: int, ctx: _Ctx) -> None:
        rules = self.config.inhibit_rules
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
        ctx.outputs.append(Output("inhibitors", state["fp"], value))

    # ---- scan scopes ---------------------------------------------------------------------

    def _scope_key(self, state: dict[str, Any]) -> str:
        return f"{state['entity']}|{SCOPE_MARK}|{state['scope']}"

    def _scope_add(self, state: dict[str, Any], key: str, ctx: _Ctx) -> None:
        scope_key = self._scope_key(state)
        scope = _load(ctx.alerts, scope_key) or self._new_scope(state["entity"], state["scope"])
        if key not in scope["open"]:
            scope["open"] = sorted([*scope["open"], key])
            self._save_scope(scope_key, scope, ctx)

    def _scope_remove(self, state: dict[str, Any], key: str, ctx: _Ctx) -> None:
        scope_key = self._scope_key(state)
        scope = _load(ctx.alerts, scope_key)
        if scope is not None and key in scope["open"]:
            scope["open"] = [k for k in scope["open"] if k != key]
            self._save_scope(scope_key, scope, ctx)

    def _save_scope(self, key: str, scope: dict[str, Any], ctx: _Ctx, popped: bool = False) -> None:
        if not scope["open"] and not scope["pend"]:
            ctx.alerts.delete(key)
            return
        previous = scope.get("due")
        scope["due"] = scope["pend"][0]["ts_ms"] if scope["pend"] else None
        ctx.alerts[key] = scope
        if scope["due"] is not None and (popped or scope["due"] != previous):
            ctx.schedule.push(scope["due"], _ALERT_RANK, key)

    def _advance_scope(self, key: str, scope: dict[str, Any], now: int, ctx: _Ctx) -> None:
        """Resolve the open findings a scan due at `now` no longer lists."""
        while scope["pend"] and scope["pend"][0]["ts_ms"] <= now:
            scan = scope["pend"].pop(0)
            present = set(scan["present"])
            still_open = []
            for alert_key in scope["open"]:
                state = _load(ctx.alerts, alert_key)
                if state is None or state["status"] != "firing":
                    continue
                if state["fp"] in present or (state["last_seen"] or 0) > scan["ts_ms"]:
                    still_open.append(alert_key)
                    continue
                self._resolve(alert_key, state, scan["ts_ms"], "scan", ctx)
                self._save_alert(alert_key, state, ctx)
            scope["open"] = still_open
            scope["last_scan"] = max(scope["last_scan"] or 0, scan["ts_ms"])
        self._save_scope(key, scope, ctx, popped=True)

    # ---- groups --------------------------------------------------------------------------

    def _new_group(self, key: str, state: dict[str, Any]) -> dict[str, Any]:
        labels = state["labels"]
        group_by = self.config.group_by
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

    def _join_group(self, key: str, state: dict[str, Any], now: int, ctx: _Ctx) -> None:
        """Put the alert in its group's store (if not there) and schedule the flush that
        will report the change, as Alertmanager's aggregation group does."""
        group_id = state["group"]
        group = _load(ctx.groups, group_id) or self._new_group(group_id, state)
        if key not in group["members"]:
            group["members"] = sorted([*group["members"], key])
        state["in_group"] = True
        gw, starts = (
            self.config.group_wait_ms,
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
            tick = self._tick_at_or_after(group, max(now, last + 1))
            group["next"] = tick if group["next"] is None else min(group["next"], tick)
        self._save_group(group_id, group, ctx)

    def _repeat_due(self, state: dict[str, Any], now: int, ctx: _Ctx) -> None:
        """A new sighting of a notified, firing member: make sure its group ticks when the
        repeat is due (a group with nothing new to say has no tick scheduled)."""
        group = _load(ctx.groups, state["group"])
        if group is None or not group["flushed"] or group["next"] is not None:
            return
        interval = self._repeat_interval(self._member_states(group, ctx))
        if group["log"] is None or interval is None:
            return
        group["next"] = self._tick_at_or_after(group, max(now, group["log"]["time"] + interval + 1))
        self._save_group(state["group"], group, ctx)

    def _tick_at_or_after(self, group: dict[str, Any], at: int) -> int:
        gi, base = self.config.group_interval_ms, group["base"]
        steps = max(1, -(-(at - base) // gi))
        return base + steps * gi

    def _save_group(self, key: str, group: dict[str, Any], ctx: _Ctx, popped: bool = False) -> None:
        previous = group.get("due")
        if group["alive"]:
            group["due"] = group["next"]
        elif group["idle_since"] is not None:
            group["due"] = group["idle_since"] + self.config.retention_ms
        else:
            group["due"] = None
        ctx.groups[key] = group
        if group["due"] is not None and (popped or group["due"] != previous):
            ctx.schedule.push(group["due"], _GROUP_RANK, key)

    def _run_group(self, key: str, due: int, ctx: _Ctx) -> None:
        group = _load(ctx.groups, key)
        if group is None or group.get("due") is None or group["due"] > due:
            return  # stale timer
        if group["alive"]:
            # At the timer's own time, however far the clock jumped past it: a worker's clock
            # moves in steps of any size (batches, ticks; app/runtime/partition_clock.py).
            self._flush_group(key, group, due, ctx)
        elif not ctx.flush and not group["members"]:
            ctx.groups.delete(key)  # idle past retention: forget the notification log

    def _member_states(self, group: dict[str, Any], ctx: _Ctx) -> list[dict[str, Any]]:
        """The stored records of a group's members."""
        states = (ctx.alerts.get(alert_key) for alert_key in group["members"])
        return [state for state in states if isinstance(state, dict)]

    def _repeat_interval(self, states: Iterable[Mapping[str, Any]]) -> int | None:
        """How often a group of these alerts repeats (None: never): `repeat_interval` while
        any member is an incident, the findings' own interval when all are state."""
        kinds = {state["kind"] for state in states}
        if kinds and kinds <= self.config.state_kinds:
            return self.config.state_repeat_interval_ms or None
        return self.config.repeat_interval_ms

    def _needs_update(
        self,
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
        if self.config.send_resolved and not resolved <= set(log["resolved"]):
            return True
        return repeat_interval is not None and log["time"] < now - repeat_interval

    def _flush_group(self, key: str, group: dict[str, Any], now: int, ctx: _Ctx) -> None:
        group["last"] = now
        if not group["flushed"]:
            group["flushed"], group["base"] = True, now
        members: list[tuple[str, dict[str, Any]]] = []
        for alert_key in group["members"]:
            state = _load(ctx.alerts, alert_key)
            if state is not None and state["status"] is not None:
                members.append((alert_key, state))
        firing, resolved = [], []
        for alert_key, state in members:
            silenced, inhibited = self._mute(state, now)
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
        interval = self._repeat_interval(state for _, state in members)
        if ctx.flush and interval is None and repeat:
            interval = self.config.repeat_interval_ms  # the last repeat of unsent inputs
        if (firing or resolved) and self._needs_update(
            log, fset, rset, now, interval if repeat else None
        ):
            previous = set(log["firing"]) if log else set()
            sent = firing + (resolved if self.config.send_resolved else [])
            for _, state in sorted(sent, key=lambda item: item[1]["fp"]):
                if state["status"] == "firing":
                    notification = "repeat" if state["fp"] in previous else "firing"
                else:
                    notification = "resolved"
                ctx.outputs.append(self._record(key, state, now, notification))
                if state["acc"]:
                    self.accounting["notified"] += 1
                    self.accounting["folded"] += state["acc"] - 1
                    state["acc"] = 0
                state["notified"] = {"time": now, "status": state["status"]}
            if sent:
                self.stats["notifications"] += 1
                self.stats["records"] += len(sent)
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
                    self.accounting[reason] += state["acc"]
                    state["acc"] = 0
                state["in_group"] = False
            if state != ctx.alerts.get(alert_key):
                self._save_alert(alert_key, state, ctx)
        group["members"] = remaining
        if not remaining:
            group.update(alive=False, flushed=False, next=None, idle_since=now)
        else:
            group["next"] = self._next_tick(group, members, now, ctx.flush)
        self._save_group(key, group, ctx, popped=True)

    def _next_tick(
        self,
        group: dict[str, Any],
        members: list[tuple[str, dict[str, Any]]],
        now: int,
        flush: bool,
    ) -> int | None:
        """The first tick at which a flush could send something without new inputs: the
        repeat (only for alerts with sightings not yet notified), the end or start
        of a matching silence, and (unless flushing) every tick while a member is inhibited,
        since inhibition sources change outside this partition."""
        reasons: list[int] = []
        log = group["log"]
        unmuted_firing = [
            s
            for _, s in members
            if s["status"] == "firing" and not s["silenced_by"] and not s["inhibited_by"]
        ]
        wants_repeat = any(s["acc"] for s in unmuted_firing)
        interval = self._repeat_interval(state for _, state in members)
        if flush and interval is None and wants_repeat:
            interval = self.config.repeat_interval_ms  # the last repeat of unsent inputs
        if log is not None and unmuted_firing and wants_repeat and interval is not None:
            reasons.append(log["time"] + interval + 1)
        if not flush and any(s["inhibited_by"] for _, s in members):
            reasons.append(now + 1)
        if self.silences:
            for _, state in members:
                labels = match_labels(state["labels"], state["entity"], state["source"])
                changes = silence_changes(labels, self.silences, now)
                if changes:
                    reasons.append(changes[0])
        if not reasons:
            return None
        return self._tick_at_or_after(group, max(min(reasons), now + 1))

    def _record(self, group: str, state: dict[str, Any], now: int, notification: str) -> Output:
        score, factors = self.scorer.score(state, now)
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
            "first_seen": _time(state["first_seen"]),
            "last_seen": _time(state["last_seen"]),
            "starts_at": _time(state["starts"]),
            "ends_at": _time(state["resolved_at"]) if resolved else None,
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


def _time(ts_ms: int | None) -> str | None:
    return format_time(ts_ms) if ts_ms is not None else None


#: The fields of an alert record that describe its episodes (reset by `_forget_history`).
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


def _fresh_history() -> dict[str, Any]:
    """The episode fields of a new alert record."""
    return {k: v.copy() if isinstance(v, dict | list) else v for k, v in _HISTORY.items()}


def _forget_history(state: dict[str, Any]) -> None:
    """Reset an alert record to a new alert's, keeping its identity and waiting inputs
    (what `_new_alert` gives, with its inputs still to apply)."""
    state.update(_fresh_history())


def _pending_order(item: dict[str, Any]) -> tuple[int, int, str]:
    """Event time, then firing before resolved (a resolution at the same instant wins), then
    id: arrival order never matters."""
    return (item["ts_ms"], item.get("status") == "resolved", item["id"])


def _insert_pending(pend: list[dict[str, Any]], item: dict[str, Any]) -> None:
    """Keep waiting inputs sorted by `_pending_order` (after equal ones)."""
    bisect.insort(pend, item, key=_pending_order)


#: Where an alert keeps its waiting inputs (app/runtime/spill.py): `pend`, then spill records.
PENDING = spill.Layout(
    inline="pend", items="pend", kind="alert_pend", time="ts_ms", order=_pending_order
)
_PENDING_LIMITS = (INLINE_PENDING, PENDING_BUCKET_MS, PENDING_BUCKET_MAX)


def _pending_prefix(key: str) -> str:
    """The key prefix of an alert's spill records."""
    return f"{key}|{PENDING_MARK}"
