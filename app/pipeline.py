"""The Faust-free processing core shared by the agents and `vigil replay --offline`.

`ingest` turns one raw record into canonical events (or a dead letter). `process` applies the
stateful logic to one event and returns a `Step`: the outputs to send and the staged state
writes. The agent sends the outputs, waits for the broker's acknowledgement, then commits the
writes to its Faust tables; offline replay commits to dicts at once. Both paths run the same code
on the same state shapes, so what one emits the other emits too.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml

from app.catalogue import Catalogue
from app.dead_letters import dead_letter
from app.masking import MaskingPolicy
from app.model.alerts import AlertInput
from app.model.events import Event
from app.model.outputs import Origin, Output
from app.runtime import held, partition_clock
from app.runtime.batch import Batch, Step
from app.runtime.risk_clock import tick_signal
from app.runtime.staged import StagedState, owned_by
from app.settings import Settings
from app.sources.decode import DecodeLimits, too_large
from app.sources.errors import NormalizeError
from app.sources.files import OversizeRecord
from app.sources.normalize import Normalizer
from app.topics import TopicCatalog, entity_partition
from tables.alerts.config import DedupConfig
from tables.alerts.labels import alert_from_anomaly
from tables.alerts.scoring import Scorer
from tables.alerts.silences import parse_inhibit_rule
from tables.alerts.stage import AlertStage
from tables.alerts.timers import TimerSchedule
from tables.anomaly.detector import METRIC_DETECTOR
from tables.anomaly.rate_detector import RateDetectorConfig
from tables.compliance.drift import DriftStage
from tables.compliance.drift_config import DriftConfig
from tables.compliance.policy_rules import PolicyReloader
from tables.compliance.stage import ComplianceConfig, ComplianceStage
from tables.entities.stats import update_entity_stats
from tables.risk.signals import signal_outputs, signals_from
from tables.windows.event_windows import WindowSpec
from tables.windows.series_windows import SeriesConfig, SeriesWindows, WindowSchedule, watermark_key


@dataclass(slots=True)
class PipelineState:
    """The state `process` reads and writes: one mapping per table (dicts offline).

    `silences` and `inhibitors` are global (every worker holds all of them); the others are
    keyed by entity and co-partitioned with `vigil.events`.
    """

    entities: MutableMapping[str, Any] = field(default_factory=dict)
    series: MutableMapping[str, Any] = field(default_factory=dict)
    alerts: MutableMapping[str, Any] = field(default_factory=dict)
    groups: MutableMapping[str, Any] = field(default_factory=dict)
    silences: MutableMapping[str, Any] = field(default_factory=dict)
    inhibitors: MutableMapping[str, Any] = field(default_factory=dict)
    desired: MutableMapping[str, Any] = field(default_factory=dict)
    observed: MutableMapping[str, Any] = field(default_factory=dict)
    posture: MutableMapping[str, Any] = field(default_factory=dict)
    #: The runtime's state beside the stages': each partition's clock
    #: (app/runtime/partition_clock.py) and the events held for it (app/runtime/held.py).
    clock: MutableMapping[str, Any] = field(default_factory=dict)
    held: MutableMapping[str, Any] = field(default_factory=dict)

    #: Tables whose values are not marked with the partition that wrote them: the global ones,
    #: and the entity stats (no timers are rebuilt from them).
    UNOWNED: ClassVar[frozenset[str]] = frozenset({"entities", "silences", "inhibitors"})


def build_normalizer(settings: Settings) -> Normalizer:
    """The Normalizer configured from settings (limits, masking, future event times)."""
    return Normalizer(
        limits=DecodeLimits(max_bytes=settings.max_record_bytes, max_depth=settings.max_depth),
        masking=MaskingPolicy(enabled=settings.masking, mask_ips=settings.mask_ips),
        max_future_skew_ms=settings.max_future_skew_ms,
    )


def dedup_config(settings: Settings) -> DedupConfig:
    """Alert grouping and timing from settings (Alertmanager's defaults)."""
    rules: tuple = ()
    if settings.inhibit_rules:
        with open(settings.inhibit_rules, encoding="utf-8") as handle:
            rules = tuple(parse_inhibit_rule(rule) for rule in yaml.safe_load(handle) or [])
    return DedupConfig(
        group_by=tuple(name.strip() for name in settings.group_by.split(",") if name.strip()),
        group_wait_ms=settings.group_wait_ms,
        group_interval_ms=settings.group_interval_ms,
        repeat_interval_ms=settings.repeat_interval_ms,
        state_repeat_interval_ms=settings.finding_repeat_interval_ms,
        resolve_timeout_ms=settings.resolve_timeout_ms,
        inhibit_rules=rules,
    )


def _globs(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def drift_config(settings: Settings) -> DriftConfig:
    """Drift settings: who counts as the IaC pipeline, baselines, masking."""
    defaults = DriftConfig()
    return DriftConfig(
        iac_user_agents=_globs(settings.iac_user_agents) or defaults.iac_user_agents,
        iac_identities=_globs(settings.iac_identities),
        baselines_path=settings.drift_baselines or None,
        masking=MaskingPolicy(enabled=settings.masking, mask_ips=settings.mask_ips),
    )


def compliance_config(settings: Settings) -> ComplianceConfig:
    """Compliance settings: the rule pack and the cluster name."""
    return ComplianceConfig(
        pack_path=settings.compliance_rules or None, k8s_cluster=settings.k8s_cluster or None
    )


def load_catalogue(settings: Settings) -> Catalogue | None:
    """The service catalogue, when one is configured."""
    return Catalogue.load(settings.catalogue) if settings.catalogue else None


def series_config(settings: Settings) -> SeriesConfig:
    """Windowing and detection settings for every series."""
    return SeriesConfig(
        spec=WindowSpec.tumbling(settings.window_ms, settings.window_grace_ms),
        threshold=settings.anomaly_threshold,
        emit_windows=settings.emit_windows,
        detector=METRIC_DETECTOR,
        rate_detector=RateDetectorConfig(),
    )


@functools.cache
def partition_keys(partitions: int) -> tuple[str, ...]:
    """One message key per partition (`~tick<n>` that hashes to it): heartbeats reach every
    partition through the ordinary partitioner, with no explicit partition numbers."""
    keys: dict[int, str] = {}
    candidate = 0
    while len(keys) < partitions:
        key = f"~tick{candidate}"
        keys.setdefault(entity_partition(key, partitions), key)
        candidate += 1
    return tuple(keys[p] for p in range(partitions))


#: Event-time spacing of the heartbeats the risk stage receives (its check interval).
RISK_TICK_MS = Settings.from_env().risk.check_interval_ms

#: Most risk heartbeats one clock step sends per risk partition: the latest boundaries it
#: crossed. The risk stage runs each subject's timers between two clocks itself (each at its
#: own time), so a jump over days of event time costs a few heartbeats, not one per boundary.
MAX_RISK_TICKS = 3

#: The partition clock before a partition heard from its sources: fires no timer.
NOT_STARTED = -(2**62)


#: Every table of `PipelineState`, by name.
TABLES = tuple(f.name for f in dataclasses.fields(PipelineState))


def staged_tables(batch: Batch, partition: int) -> PipelineState:
    """Every table of `partition` as staged in `batch` (reads see the batch's writes), the
    same bundle for every event of the partition in the batch."""
    return batch.view(partition, _stage_every_table)


def _stage_every_table(batch: Batch, partition: int) -> PipelineState:
    return PipelineState(*(batch.staged(partition, name) for name in TABLES))


class Pipeline:
    """Raw record -> canonical events -> stateful logic -> outputs for downstream topics."""

    def __init__(self, settings: Settings, state: PipelineState | None = None) -> None:
        self.settings = settings
        self.state = state if state is not None else PipelineState()
        self.normalizer = build_normalizer(settings)
        self.series = SeriesWindows(series_config(settings))
        self.catalogue = load_catalogue(settings)
        self.alerts = AlertStage(
            dedup_config(settings),
            Scorer(catalogue=self.catalogue),
            silences=self.state.silences,
            inhibitors=self.state.inhibitors,
        )
        self.drift = DriftStage(drift_config(settings))
        self.compliance = ComplianceStage(compliance_config(settings))
        #: Rego policies in the compliance pack; `vigil policy reload` swaps them in place.
        self.policies = PolicyReloader(
            self.compliance, settings.compliance_rules or None, settings.policy_dir or None
        )
        self.policies.reload(strict=True)
        self._schedules: dict[tuple[int, str], WindowSchedule] = {}
        self._timers: dict[int, TimerSchedule] = {}
        self._held: dict[int, held.HeldSchedule] = {}
        #: held events applied before the clock passed them (an entity over `held.MAX_HELD`)
        self.held_overflow = 0
        #: events that arrived after the partition clock had passed their time
        self.behind_clock = 0
        #: the raw topics: the sources a partition clock waits for (app/runtime/partition_clock.py)
        self.raw_topics = frozenset(TopicCatalog(settings).raw_topics())

    def ingest(
        self, raw: bytes | OversizeRecord, family: str | None, origin: Origin
    ) -> list[Output]:
        """Normalize one raw record into `events` outputs, or one `deadletter` output.

        A record some of whose events are future-dated gives a dead letter per such event
        (original bytes, `event_index`) and the other events. An OversizeRecord (a file's
        record over the size limit) is dead-lettered `too_large`.
        """
        if isinstance(raw, OversizeRecord):
            error = too_large(raw.size, self.normalizer.limits.max_bytes)
            return [dead_letter(origin, error, raw, masking=self.normalizer.masking)]
        try:
            normalized = self.normalizer.normalize_record(raw, family=family)
        except NormalizeError as error:
            return [dead_letter(origin, error, raw, masking=self.normalizer.masking)]
        refused = [
            dead_letter(origin, error, raw, index, masking=self.normalizer.masking)
            for index, error in normalized.rejected
        ]
        events = normalized.events
        if origin.partition is not None and origin.offset is not None:
            for index, event in normalized.accepted:
                event.origin = {
                    "t": origin.topic,
                    "p": origin.partition,
                    "o": origin.offset,
                    "i": index,
                }
        if origin.timestamp_ms is not None:
            for event in events:
                if event.attributes.get("time_source") == "none":
                    # The record carries no time of its own (e.g. a bare Terraform plan): the
                    # broker's record timestamp, fixed at produce time, is the next best.
                    event.ts_ms = origin.timestamp_ms
                    event.attributes["time_source"] = "kafka_timestamp"
        return refused + [Output("events", event.entity, event.to_dict()) for event in events]

    def process(
        self,
        event: Event,
        partition: int = 0,
        batch: Batch | None = None,
        arrival_ms: int | None = None,
    ) -> Step:
        """Apply the stateful logic to one canonical event of `partition`.

        `arrival_ms` is the record's Kafka timestamp (offline: None), for the partition clock
        (app/runtime/partition_clock.py). With a `batch`, writes stay staged in it (read by later
        events of the batch) until the caller commits the batch; without one, the returned Step
        holds this event's writes.
        """
        batch = batch if batch is not None else Batch(self.state)
        t = staged_tables(batch, partition)
        t.entities[event.entity] = update_entity_stats(t.entities.get(event.entity), event)
        schedule = self.schedule(partition, event.source)
        outputs = self.series.apply(event, t.series, schedule)
        source = event.origin["t"] if event.origin else event.source
        before, clock = self._advance_clock(t.clock, source, event.ts_ms, arrival_ms)
        timers = self.timers(partition)
        self.alerts.receive_event(event, t.alerts, t.groups, timers)
        overflow = None
        if self._decides_in_order(event):
            cutoff = held.hold(t.held, event, self.held(partition))
            overflow = None if cutoff is None else (held.held_key(event.entity), cutoff)
        released, raised = self._release(partition, clock, t, overflow)
        outputs += released
        raised += self._anomaly_alerts(outputs, t.series, event.source)
        derived = self._alerts_at(clock, raised, partition, t.alerts, t.groups)
        outputs += self._conclude(event, outputs, derived, t.inhibitors, partition, before, clock)
        return Step(outputs, batch.for_partition(partition))

    def _alerts_at(
        self,
        clock: int,
        raised: list[AlertInput],
        partition: int,
        alerts: StagedState,
        groups: StagedState,
    ) -> list[Output]:
        """Take in the alert inputs `raised` by this step, then fire every alert timer due at
        the partition `clock`: all inputs are in before any timer fires, so none is late."""
        timers = self.timers(partition)
        for alert in raised:
            self.alerts.receive_alert(alert, alerts, groups, timers)
        return self.alerts.on_watermark(clock, alerts, groups, timers)

    def _decides_in_order(self, event: Event) -> bool:
        """Whether the compliance or drift stage reads this event (it is then held until the
        partition clock passes it, app/runtime/held.py)."""
        return self.compliance.reads(event) or self.drift.change_of(event) is not None

    def _release(
        self,
        partition: int,
        clock: int | float,
        t: PipelineState,
        overflow: tuple[str, int] | None = None,
    ) -> tuple[list[Output], list[AlertInput]]:
        """Apply the held events the clock passed to the drift and compliance stages (`t`: the
        partition's staged tables), each entity's in event-time order: their outputs and the
        alerts they raise. `overflow`:
        an entity holding more than `held.MAX_HELD` events and the time up to which its
        oldest are applied now, whatever the clock."""
        outputs: list[Output] = []
        raised: list[AlertInput] = []
        schedule = self.held(partition)
        due: list[tuple[str, int | float, bool]] = []
        if overflow is not None:
            due.append((*overflow, True))
        if clock != NOT_STARTED:
            while (entry := schedule.pop_due(clock)) is not None:
                due.append((entry[1], clock, False))
        for key, until, forced in due:
            released = held.release(t.held, key, until, schedule)
            if forced:
                self.held_overflow += len(released)
            for event in released:
                outputs += self.drift.on_event(event, event.ts_ms, t.desired, t.observed)
                checked = self.compliance.on_event(event, event.ts_ms, t.posture, t.observed)
                outputs += checked.outputs
                raised += checked.alerts
        return outputs, raised

    def _conclude(
        self,
        event: Event | None,
        outputs: list[Output],
        derived: list[Output],
        inhibitors: StagedState,
        partition: int,
        before: int,
        clock: int,
    ) -> list[Output]:
        """What follows the stages for an event (None: a tick) with these `outputs` and the
        alert stage's `derived` ones: inhibitors applied, risk signals, risk heartbeats."""
        routed = self._route_inhibitors(derived, inhibitors)
        signals = signal_outputs(signals_from(event, [*outputs, *routed], self.catalogue))
        return [*routed, *signals, *self._risk_ticks(partition, before, clock)]

    def _risk_ticks(self, partition: int, before: int, clock: int) -> list[Output]:
        """Event-time heartbeats to every risk partition for each `RISK_TICK_MS` boundary this
        partition's clock crossed (at most `MAX_RISK_TICKS` of the latest), so risk decays and
        re-emits without new signals, however far the clock jumped at once."""
        if clock == NOT_STARTED:
            return []
        boundary = clock - clock % RISK_TICK_MS
        first = before - before % RISK_TICK_MS + RISK_TICK_MS
        first = max(first, boundary - (MAX_RISK_TICKS - 1) * RISK_TICK_MS)
        return [
            Output("risk_signals", key, tick_signal(f"{partition}>{key}", at, partition))
            for at in range(first, boundary + 1, RISK_TICK_MS)
            for key in partition_keys(self.settings.partitions)
        ]

    def clock_heartbeats(
        self,
        partition: int,
        state: StagedState | None = None,
        arrival_ms: int | None = None,
        idle: bool | None = None,
    ) -> list[Output]:
        """A `clock` heartbeat with this partition's clock to every risk partition, sent on
        every clock tick (`arrival_ms`: the tick's), so the risk stage knows how far this
        producer is between risk boundaries too (app/runtime/risk_clock.py); `NOT_STARTED` while the
        partition waits for its sources. It declares itself `idle` when it got no event, or
        none within the idle time (every source idle: it has nothing to send), and the risk
        stage then stops waiting for it. `idle` given: declare that (offline)."""
        clocks = state if state is not None else StagedState(self.state.clock)
        record = clocks.get(partition_clock.CLOCK_KEY) or {}
        clock = record.get("clock", record.get("wm"))
        if idle is None:
            idle = arrival_ms is None or not partition_clock.has_active_source(
                record, arrival_ms, self.settings.clock_idle_ms
            )
        clock = NOT_STARTED if clock is None else clock
        beats = []
        for key in partition_keys(self.settings.partitions):
            beat = tick_signal(f"{partition}>{key}", clock, partition, "clock")
            if idle:
                beat["idle"] = True
            beats.append(Output("risk_signals", key, beat))
        return beats

    def settle(self, partition: int) -> Step:
        """Offline end of input: the clock moves to the newest event time, as a worker's does
        once every source went idle, and what that releases and fires comes out."""
        return self.tick(partition, None, settle=True)

    def tick(
        self,
        partition: int,
        arrival_ms: int | None,
        batch: Batch | None = None,
        settle: bool = False,
        progress: Mapping[str, Any] | None = None,
    ) -> Step:
        """Apply one clock tick (app/runtime/partition_clock.py) with the ingest `progress` it
        carries: sources read to their end and silent for the idle time stop holding the
        partition clock; alert timers and risk heartbeats follow it, and a `clock` heartbeat
        tells every risk partition where the clock is."""
        batch = batch if batch is not None else Batch(self.state)
        t = staged_tables(batch, partition)
        before, clock = self._advance_clock(t.clock, None, None, arrival_ms, settle, progress)
        outputs: list[Output] = []
        if clock != before:
            outputs, raised = self._release(partition, clock, t)
            derived = self._alerts_at(clock, raised, partition, t.alerts, t.groups)
            outputs += self._conclude(
                None, outputs, derived, t.inhibitors, partition, before, clock
            )
        if not settle:
            outputs += self.clock_heartbeats(partition, t.clock, arrival_ms)
        return Step(outputs, batch.for_partition(partition))

    def _advance_clock(
        self,
        clocks: StagedState,
        source: str | None,
        ts_ms: int | None,
        arrival_ms: int | None,
        settle: bool = False,
        progress: Mapping[str, Any] | None = None,
    ) -> tuple[int, int]:
        """The partition clock before and after this event or tick; `NOT_STARTED` while the
        partition still waits for its sources' first events."""
        record = clocks.get(partition_clock.CLOCK_KEY)
        step = partition_clock.advance(
            record,
            source,
            ts_ms,
            arrival_ms,
            self.settings.clock_idle_ms,
            self.raw_topics,
            settle,
            progress,
        )
        clocks[partition_clock.CLOCK_KEY] = step.record
        if ts_ms is not None and step.before is not None and ts_ms <= step.before:
            self.behind_clock += 1
        if step.clock is None:
            return NOT_STARTED, NOT_STARTED
        if step.before is None:
            # Starting: as if the clock had been just before the first risk boundary of the
            # oldest event, whether it started on that event or only after all sources came.
            first = (step.earliest if step.earliest is not None else step.clock + 1) - 1
            return first - first % RISK_TICK_MS - 1, step.clock
        return step.before, step.clock

    @staticmethod
    def _anomaly_alerts(
        outputs: list[Output], series: StagedState, source: str
    ) -> list[AlertInput]:
        """Alerts for the anomalies among `outputs`, seen when their window closed: at the
        source's watermark, which the partition clock has not passed yet, so they wait for it
        like every other alert input (their `starts_at` stays the window's end)."""
        mark = (series.get(watermark_key(source)) or {}).get("wm")
        raised = []
        for out in outputs:
            if out.topic == "anomalies":
                alert = alert_from_anomaly(out.value)
                if mark is not None and mark > alert.ts_ms:
                    alert = dataclasses.replace(alert, ts_ms=mark)
                raised.append(alert)
        return raised

    @staticmethod
    def _route_inhibitors(outputs: list[Output], inhibitors: StagedState) -> list[Output]:
        """Apply `inhibitors` records to the global table; pass every other output on."""
        passed: list[Output] = []
        for out in outputs:
            if out.topic != "inhibitors":
                passed.append(out)
            elif out.value.get("status") == "firing":
                inhibitors[out.key] = dict(out.value)
            else:
                inhibitors.delete(out.key)
        return passed

    def timers(self, partition: int) -> TimerSchedule:
        """The alert timer schedule of a partition, rebuilt from state when first needed."""
        timers = self._timers.get(partition)
        if timers is None:
            items = itertools.chain(self.state.alerts.items(), self.state.groups.items())
            timers = TimerSchedule.rebuild(owned_by(items, partition))
            self._timers[partition] = timers
        return timers

    def schedule(self, partition: int, source: str) -> WindowSchedule:
        """The window-close schedule of a partition's source, rebuilt from state when needed."""
        schedule = self._schedules.get((partition, source))
        if schedule is None:
            schedule = WindowSchedule.rebuild(
                owned_by(self.state.series.items(), partition), source, self.series.config.spec
            )
            self._schedules[(partition, source)] = schedule
        return schedule

    def held(self, partition: int) -> held.HeldSchedule:
        """The schedule of a partition's held events, rebuilt from state when first needed."""
        schedule = self._held.get(partition)
        if schedule is None:
            schedule = held.HeldSchedule.rebuild(owned_by(self.state.held.items(), partition))
            self._held[partition] = schedule
        return schedule

    def forget_schedules(self) -> None:
        """Drop the in-memory schedules (after a rebalance); they are rebuilt on demand."""
        self._schedules.clear()
        self._timers.clear()
        self._held.clear()

    def flush(self, partition: int = 0) -> Step:
        """End of input (offline only): close every window, then fire every alert timer."""
        batch = Batch(self.state)
        t = staged_tables(batch, partition)
        keys = [k for k, v in self.state.series.items() if isinstance(v, dict) and v.get("open")]
        outputs = self.series.flush(t.series, keys)
        timers = self.timers(partition)
        derived: list[Output] = []
        released, raised = self._release(partition, math.inf, t)
        outputs += released
        for alert in raised:
            derived += self.alerts.on_alert(alert, None, t.alerts, t.groups, timers)
        for out in outputs:
            if out.topic == "anomalies":
                alert = alert_from_anomaly(out.value)
                derived += self.alerts.on_alert(alert, None, t.alerts, t.groups, timers)
        derived += self.alerts.flush(t.alerts, t.groups, timers)
        outputs += self._route_inhibitors(derived, t.inhibitors)
        return Step(outputs, batch.for_partition(partition))
