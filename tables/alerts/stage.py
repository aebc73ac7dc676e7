"""Alert deduplication, grouping and notification with Prometheus Alertmanager's semantics.

Alert-like events (tables/alerts/labels.py) become alert instances identified by fingerprint.
Everything about them lives in the partition of their entity, so no extra topic hop is needed:

- `alerts` table, key `<entity>|<fingerprint>`: one alert instance (see records.py `new_alert`):
  first and last sighting, count, status, `ends` (the sender's endsAt), last notification, group
  key, labels, annotations, severity, scoring inputs, `silenced_by` / `inhibited_by`, the inputs
  still waiting for the watermark (`pend`, the earliest `INLINE_PENDING`; later ones in spill
  records `<entity>|<fingerprint>|~pend|<bucket>`, pending.py), and the next timer
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
global table with `tables.alerts.silences.apply_inhibitor` and pass that table as `inhibitors`.

Accounting (`AlertStage.accounting`): every input alert is counted once as `inputs` and, once
its fate is known, as exactly one of `notified` (the first input carried by a notification
record), `folded` (the other inputs absorbed into that record, inputs whose alert resolved
before any notification was due, and resolutions of alerts that were not firing), `silenced`
or `inhibited` (muted when it arrived). Inputs not yet carried by any notification are held in
the alert's `acc` field; `flush` sends a last repeat for alerts that have some.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from app.model.alerts import AlertInput
from app.model.events import Event
from app.model.outputs import Output
from app.runtime.staged import StagedState
from tables.alerts.config import DedupConfig
from tables.alerts.instances import receive, run_alert_key
from tables.alerts.labels import alert_from_event, resolutions_from_scan
from tables.alerts.notifications import run_group
from tables.alerts.scan_scopes import receive_scan
from tables.alerts.scoring import Scorer
from tables.alerts.step import AlertStep
from tables.alerts.timers import FOREVER, GROUP_RANK, TimerSchedule


class AlertStage:
    """Alertmanager-style dedup, grouping, muting and notification over staged state: the
    entry points; instances.py, scan_scopes.py, groups.py and notifications.py do the work."""

    def __init__(
        self,
        config: DedupConfig | None = None,
        scorer: Scorer | None = None,
        silences: Mapping[str, Mapping[str, Any]] | None = None,
        inhibitors: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.config = config or DedupConfig()
        self.scorer = scorer or Scorer()
        #: Global, read-only: silence id -> `tables.alerts.silences.parse_silence` result.
        self.silences: Mapping[str, Mapping[str, Any]] = silences if silences is not None else {}
        #: Global, read-only: fingerprint -> firing inhibition source (the `inhibitors` topic).
        self.inhibitors: Mapping[str, Mapping[str, Any]] = (
            inhibitors if inhibitors is not None else {}
        )
        #: inputs / notified / folded / silenced / inhibited (see the module docstring).
        self.accounting: Counter[str] = Counter()
        #: notifications (group notifications sent), records, resolved_<how>.
        self.stats: Counter[str] = Counter()

    def _step(
        self, alerts: StagedState, groups: StagedState, schedule: TimerSchedule, flush: bool
    ) -> AlertStep:
        return AlertStep(
            alerts,
            groups,
            schedule,
            flush,
            self.config,
            self.scorer,
            self.silences,
            self.inhibitors,
            self.accounting,
            self.stats,
        )

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
        step = self._step(alerts, groups, schedule, flush=False)
        alert = alert_from_event(event)
        if alert is not None:
            receive(step, alert)
        else:
            scan = resolutions_from_scan(event)
            if scan is not None:
                receive_scan(step, event.entity, scan)

    def receive_alert(
        self,
        alert: AlertInput,
        alerts: StagedState,
        groups: StagedState,
        schedule: TimerSchedule,
    ) -> None:
        """Take in one alert built elsewhere without firing timers (`on_watermark`)."""
        receive(self._step(alerts, groups, schedule, flush=False), alert)

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
        step = self._step(alerts, groups, schedule, flush=flush)
        while (item := schedule.pop_due(clock)) is not None:
            due, rank, key = item
            if rank == GROUP_RANK:
                run_group(step, key, due)
            else:
                run_alert_key(step, key, due)
        return step.outputs

    def flush(
        self, alerts: StagedState, groups: StagedState, schedule: TimerSchedule
    ) -> list[Output]:
        """End of input (offline): apply every waiting input and fire every timer as if the
        watermark were +inf, without endless repeats: a group sends one last repeat only for
        alerts with inputs no notification has carried yet."""
        return self.on_watermark(math.inf, alerts, groups, schedule)
