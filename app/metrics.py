"""Prometheus metrics of a Vigil worker, in a registry of their own, served at `/metrics`.

Everything lives in `REGISTRY` (not prometheus_client's global default), so tests and the
worker never see foreign or duplicated collectors. Three kinds of metrics:

- **Pushed by the agents** through near-free helpers (one cached child per label set, no label
  objects created per event): `observe_ingest(family, outputs)` after the ingest agent sent a
  raw record's outputs, `observe_step(outputs, source, event_time_ms)` after the process agent's
  step was confirmed. They count records in and out per topic and source, dead letters by error
  code, alert notification records by status and severity, anomalies, drift, late events, risk
  per service, and the end-to-end latency (event time -> emission).
- **Read at scrape time** by collectors: the alert stage's accounting (`watch_pipeline`), the
  Faust app's partitions, consumer lag, rebalancing and recovery (`install`), sink deliveries.
- **Faust's own sensor** (`faust.sensors.prometheus.PrometheusMonitor`) installed as
  `app.monitor` with this registry, prefix `vigil_faust_` (messages, events, sent messages,
  commit and send latency, rebalances), lean on the per-message path (`_monitor_class`:
  counters only, no per-message or per-table-operation bookkeeping); a small bridge over
  `faust.sensors.Monitor` is used if that module ever stops working.

Label cardinality is bounded: every label fed from data (source, error code, severity, status,
kind, service) keeps at most a fixed number of distinct values per metric, the first ones seen
by the process; later values are reported as `other` and counted in
`vigil_metric_label_overflow_total{label}`. For `vigil_risk_score{service}` the cap is
`VIGIL_METRICS_MAX_SERVICES` (default 50) and the `other` series holds the latest score of any
service beyond it (so alert on `other` only as "some unlisted service"). Topic labels are
Vigil's logical stream names (a fixed set), partitions those assigned to the worker.

Metric names (all `vigil_`): events_in_total{topic,source}, events_out_total{topic,source},
dead_letters_total{source,error_code}, alerts_total{status,severity}, anomalies_total{kind},
drift_events_total{status}, late_events_total{source}, risk_score{service},
event_latency_seconds{stage} (histogram), alert_inputs_total, alert_outcomes_total{outcome},
alert_notifications_total, alert_records_total, alert_resolutions_total{how}, dedup_ratio,
window_series, windows_open, window_state_scan_seconds, consumer_lag{topic,partition},
consumer_lag_total, partitions_assigned{topic}, rebalancing, recovering, rebalances_total,
recovery_remaining, sink_deliveries_total{sink,outcome}, metric_label_overflow_total{label},
metrics_collect_errors_total{collector}.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from app.outputs import Output

log = logging.getLogger(__name__)

# No `*_created` series: they double every counter's series for nothing Vigil's rules or
# dashboard use. Process-wide (prometheus_client keeps it as a module flag).
disable_created_metrics()

#: The label value for everything beyond a label's cap, and for missing values.
OTHER = "other"
UNKNOWN = "unknown"
#: Longest label value kept (longer ones are cut).
MAX_LABEL_CHARS = 120
#: Default caps on distinct label values per metric.
MAX_SOURCES = 64
MAX_CODES = 32
MAX_SMALL = 16
MAX_SERVICES = 50

#: Event time -> emission, in seconds: sub-second for live traffic, up to a week for replays.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    43200.0,
    86400.0,
    604800.0,
)
#: Events per process batch.
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

#: The accounting outcomes of tables/dedup.py (`AlertStage.accounting`), besides `inputs`.
ALERT_OUTCOMES = ("notified", "folded", "silenced", "inhibited")
#: Faust sensor metric prefix.
FAUST_PREFIX = "vigil_faust"


class BoundedLabel:
    """Maps raw label values to at most `cap` distinct values; the rest become `other`.

    The first `cap` values seen keep their own label; the mapping is never emptied, so a
    series never changes label. `on_overflow` is called for each value mapped to `other`.
    """

    __slots__ = ("_on_overflow", "_seen", "cap", "name")

    def __init__(self, name: str, cap: int, on_overflow: Callable[[str], None] | None = None):
        if cap < 1:
            raise ValueError("a label cap must be at least 1")
        self.name = name
        self.cap = cap
        self._seen: dict[Any, str] = {}
        self._on_overflow = on_overflow

    def __call__(self, value: Any) -> str:
        try:
            label = self._seen.get(value)
        except TypeError:  # unhashable: not a label value
            return OTHER
        if label is not None:
            return label
        if len(self._seen) >= self.cap:
            if self._on_overflow is not None:
                self._on_overflow(self.name)
            return OTHER
        label = UNKNOWN if value is None or value == "" else str(value)[:MAX_LABEL_CHARS]
        self._seen[value] = label
        return label

    def __len__(self) -> int:
        return len(self._seen)


class _Children:
    """Cached children of one labelled metric: one dict lookup per observation."""

    __slots__ = ("_cache", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._cache.get(labels)
        if child is None:
            child = self._metric.labels(*labels)
            self._cache[labels] = child
        return child


class VigilMetrics:
    """Every Vigil metric, registered in `registry` (a fresh one by default)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        max_services: int = MAX_SERVICES,
        max_sources: int = MAX_SOURCES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.clock = clock
        r = self.registry
        self.label_overflow = Counter(
            "vigil_metric_label_overflow",
            "Observations whose label value was folded into `other` by a cardinality cap.",
            ["label"],
            registry=r,
        )
        self.collect_errors = Counter(
            "vigil_metrics_collect_errors",
            "Scrape-time collectors that failed (the metric is left out of that scrape).",
            ["collector"],
            registry=r,
        )
        overflow = _Children(self.label_overflow)

        def on_overflow(name: str) -> None:
            overflow(name).inc()

        self._source = BoundedLabel("source", max_sources, on_overflow)
        self._code = BoundedLabel("error_code", MAX_CODES, on_overflow)
        self._status = BoundedLabel("status", MAX_SMALL, on_overflow)
        self._severity = BoundedLabel("severity", MAX_SMALL, on_overflow)
        self._kind = BoundedLabel("kind", MAX_SMALL, on_overflow)
        self._service = BoundedLabel("service", max_services, on_overflow)

        self.events_in = Counter(
            "vigil_events_in",
            "Records consumed: topic `raw` (telemetry, source = raw family), `events` "
            "(canonical events, source = event source) or `control`.",
            ["topic", "source"],
            registry=r,
        )
        self.events_out = Counter(
            "vigil_events_out",
            "Records emitted per logical output topic, by the source of the input record.",
            ["topic", "source"],
            registry=r,
        )
        self.dead_letters = Counter(
            "vigil_dead_letters",
            "Records sent to the dead-letter topic, by source and error code.",
            ["source", "error_code"],
            registry=r,
        )
        self.alerts = Counter(
            "vigil_alerts",
            "Alert notification records sent on vigil.alerts, by status and severity.",
            ["status", "severity"],
            registry=r,
        )
        self.anomalies = Counter(
            "vigil_anomalies",
            "Anomalies sent on vigil.anomalies, by series kind (metric or rate).",
            ["kind"],
            registry=r,
        )
        self.drift = Counter(
            "vigil_drift_events",
            "Drift records sent on vigil.drift, by status (drifted or resolved).",
            ["status"],
            registry=r,
        )
        self.late = Counter(
            "vigil_late_events",
            "Late-event records (event later than the window grace period), by source.",
            ["source"],
            registry=r,
        )
        self.source_pauses = Counter(
            "vigil_source_pauses",
            "Input partitions paused for being more than VIGIL_ALIGN_DRIFT_MS ahead of the "
            "slowest in event time (app/source_alignment.py), by stage (ingest: raw topics, "
            "process: vigil.events).",
            ["stage"],
            registry=r,
        )
        self.risk = Gauge(
            "vigil_risk_score",
            "Latest risk score (0..100) per service; at most VIGIL_METRICS_MAX_SERVICES "
            "services, any later one reported as service=other.",
            ["service"],
            registry=r,
        )
        self.latency = Histogram(
            "vigil_event_latency_seconds",
            "Event time to emission: stage `ingest` when the canonical event was sent, "
            "`process` when its derived outputs were acknowledged.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_events = Histogram(
            "vigil_batch_events",
            "Events per batch of the process agent (one broker acknowledgement and one table "
            "write per key per batch; VIGIL_BATCH_MAX, VIGIL_BATCH_LINGER_MS).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.window_series = Gauge(
            "vigil_window_series",
            "Windowed series held by this worker's active partitions (last state scan).",
            registry=r,
        )
        self.windows_open = Gauge(
            "vigil_windows_open",
            "Event-time windows still open on this worker's active partitions (last scan).",
            registry=r,
        )
        self.window_scan_seconds = Gauge(
            "vigil_window_state_scan_seconds",
            "How long the last window state scan took.",
            registry=r,
        )
        self._in = _Children(self.events_in)
        self._out = _Children(self.events_out)
        self._dead = _Children(self.dead_letters)
        self._alerts = _Children(self.alerts)
        self._anomalies = _Children(self.anomalies)
        self._drift = _Children(self.drift)
        self._late = _Children(self.late)
        self._risk = _Children(self.risk)
        self._latency = _Children(self.latency)
        self._handlers: dict[str, Callable[[dict[str, Any], str], None]] = {
            "deadletter": self._on_dead_letter,
            "alerts": self._on_alert,
            "anomalies": self._on_anomaly,
            "drift": self._on_drift,
            "late": self._on_late,
            "risk": self._on_risk,
        }
        # Pre-create the stage series so `rate()` and `absent()` see them from the start.
        for stage in ("ingest", "process"):
            self._latency(stage)
        self._alert_stages = AlertAccountingCollector(self)
        r.register(self._alert_stages)
        r.register(SinkCollector(self))
        self._bounds = BoundsCollector(self)
        r.register(self._bounds)
        self._app_collector: FaustAppCollector | None = None
        self._faust_sensor = False

    # ---- pushed by the agents ----------------------------------------------------------

    def observe_ingest(
        self, family: str | None, outputs: Iterable[Output], now: float | None = None
    ) -> None:
        """One raw record of `family` was ingested and `outputs` sent."""
        source = self._source(family)
        self._in("raw", source).inc()
        now_s = self.clock() if now is None else now
        latency = self._latency("ingest")
        for out in outputs:
            self._emitted(out, source)
            if out.topic == "events":
                ts_ms = out.value.get("ts_ms")
                if isinstance(ts_ms, int):
                    latency.observe(max(0.0, now_s - ts_ms / 1000.0))

    def observe_batch(self, events: int) -> None:
        """The process agent handled a batch of `events` events."""
        self.batch_events.observe(events)

    def observe_step(
        self,
        outputs: Iterable[Output],
        source: str | None,
        event_time_ms: int | None = None,
        *,
        topic: str = "events",
        now: float | None = None,
    ) -> None:
        """One record of `topic` from `source` was processed and its `outputs` confirmed.

        `event_time_ms` (the record's event time) feeds the `process` latency histogram.
        """
        label = self._source(source)
        self._in(topic, label).inc()
        for out in outputs:
            self._emitted(out, label)
        if event_time_ms is not None:
            now_s = self.clock() if now is None else now
            self._latency("process").observe(max(0.0, now_s - event_time_ms / 1000.0))

    def _emitted(self, out: Output, source: str) -> None:
        self._out(out.topic, source).inc()
        handler = self._handlers.get(out.topic)
        if handler is not None and isinstance(out.value, dict):
            handler(out.value, source)

    def _on_dead_letter(self, value: dict[str, Any], source: str) -> None:
        self._dead(source, self._code(value.get("error_code"))).inc()

    def _on_alert(self, value: dict[str, Any], source: str) -> None:
        status = self._status(value.get("status"))
        self._alerts(status, self._severity(value.get("severity"))).inc()

    def _on_anomaly(self, value: dict[str, Any], source: str) -> None:
        self._anomalies(self._kind(value.get("kind"))).inc()

    def _on_drift(self, value: dict[str, Any], source: str) -> None:
        self._drift(self._status(value.get("status"))).inc()

    def _on_late(self, value: dict[str, Any], source: str) -> None:
        self._late(source).inc()

    def _on_risk(self, value: dict[str, Any], source: str) -> None:
        score = value.get("score")
        if isinstance(score, int | float) and not isinstance(score, bool):
            service = value.get("service") or value.get("entity")
            self._risk(self._service(service)).set(float(score))

    # ---- state scans and scrape-time collectors -----------------------------------------

    async def refresh_window_state(
        self, items: Iterable[tuple[Any, Any]], yield_every: int = 500
    ) -> tuple[int, int]:
        """Count series and open windows in the series table's `(key, value)` items.

        Yields to the event loop every `yield_every` items; run it from a timer (a full scan
        per call). Returns (series, open windows); a scan that fails leaves the gauges as they
        were and counts an error (a dict store changed size while being iterated, say).
        """
        started = time.perf_counter()
        series = windows = 0
        try:
            for n, (_key, value) in enumerate(items, 1):
                if isinstance(value, dict) and "kind" in value and "open" in value:
                    series += 1
                    windows += len(value.get("open") or ())
                if n % yield_every == 0:
                    await asyncio.sleep(0)
        except Exception:
            log.debug("window state scan failed", exc_info=True)
            self.collect_errors.labels("window_state").inc()
            return series, windows
        self.window_series.set(series)
        self.windows_open.set(windows)
        self.window_scan_seconds.set(time.perf_counter() - started)
        return series, windows

    def watch_pipeline(self, pipeline: Any) -> None:
        """Report `pipeline.alerts` accounting and stats at every scrape."""
        self._alert_stages.stages.append(pipeline.alerts)

    def watch_bound(self, buffer: str, count: Callable[[], int]) -> None:
        """Report `count()` as `vigil_bound_overflow_total{buffer=...}` at every scrape."""
        self._bounds.counts[buffer] = count

    def watch_behind_clock(self, count: Callable[[], int]) -> None:
        """Report `count()` as `vigil_events_behind_clock_total` at every scrape."""
        self._bounds.behind_clock = count

    def install(self, app: Any, *, lean: bool = True) -> None:
        """Faust sensor metrics (app.monitor; `lean`: see `install_faust_sensor`) and the app
        collector. Call before the worker starts (app/main.py); calling again does nothing."""
        if not self._faust_sensor:
            self._faust_sensor = True
            install_faust_sensor(app, self.registry, self, lean=lean)
        if self._app_collector is None:
            self._app_collector = FaustAppCollector(app, self)
            self.registry.register(self._app_collector)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition (`/metrics` body) and its content type, negotiated from `accept`
        (Prometheus' text format 0.0.4 when none is given)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def _error(self, collector: str) -> None:
        log.debug("metrics collector %s failed", collector, exc_info=True)
        self.collect_errors.labels(collector).inc()


class AlertAccountingCollector:
    """`AlertStage.accounting` and `.stats` (tables/dedup.py) of the watched pipelines."""

    def __init__(self, metrics: VigilMetrics) -> None:
        self.metrics = metrics
        self.stages: list[Any] = []

    def collect(self) -> Iterable[Metric]:
        try:
            accounting: dict[str, int] = {}
            stats: dict[str, int] = {}
            for stage in self.stages:
                for name, count in stage.accounting.items():
                    accounting[name] = accounting.get(name, 0) + count
                for name, count in stage.stats.items():
                    stats[name] = stats.get(name, 0) + count
        except Exception:
            self.metrics._error("alert_accounting")
            return []
        inputs = accounting.get("inputs", 0)
        families: list[Metric] = [
            CounterMetricFamily(
                "vigil_alert_inputs",
                "Alert inputs taken in by the dedup stage (each counted once).",
                value=inputs,
            )
        ]
        outcomes = CounterMetricFamily(
            "vigil_alert_outcomes",
            "Fate of alert inputs: notified (first input of a notification record), folded "
            "(absorbed into one), silenced, inhibited.",
            labels=["outcome"],
        )
        for outcome in ALERT_OUTCOMES:
            outcomes.add_metric([outcome], accounting.get(outcome, 0))
        families.append(outcomes)
        ratio = GaugeMetricFamily(
            "vigil_dedup_ratio",
            "notified / inputs of the alert accounting since start (lower = more dedup); "
            "absent until the first input.",
        )
        if inputs:
            ratio.add_metric([], accounting.get("notified", 0) / inputs)
        families.append(ratio)
        families.append(
            CounterMetricFamily(
                "vigil_alert_notifications",
                "Group notifications sent (each one or more records on vigil.alerts).",
                value=stats.get("notifications", 0),
            )
        )
        families.append(
            CounterMetricFamily(
                "vigil_alert_records",
                "Alert records sent within notifications.",
                value=stats.get("records", 0),
            )
        )
        resolutions = CounterMetricFamily(
            "vigil_alert_resolutions",
            "Alerts resolved, by how (explicit, ends_at, timeout, scan, ...).",
            labels=["how"],
        )
        for name, count in sorted(stats.items()):
            if name.startswith("resolved_"):
                resolutions.add_metric([name.removeprefix("resolved_")[:MAX_LABEL_CHARS]], count)
        families.append(resolutions)
        return families


class BoundsCollector:
    """How often a bounded buffer overflowed (docs/backpressure.md), by buffer, and how many
    events came in behind their partition clock: what makes outputs follow arrival order."""

    def __init__(self, metrics: VigilMetrics) -> None:
        self.metrics = metrics
        self.counts: dict[str, Callable[[], int]] = {}
        self.behind_clock: Callable[[], int] | None = None

    def collect(self) -> Iterable[Metric]:
        behind = CounterMetricFamily(
            "vigil_events_behind_clock",
            "Events that reached their vigil.events partition after its clock had passed "
            "their time: alert, drift and compliance took them in out of event-time order.",
        )
        family = CounterMetricFamily(
            "vigil_bound_overflow",
            "Items a bounded buffer let through early because it was full (held_events, "
            "alert_inputs, risk_signals) or steps left out of a journal as too large "
            "(process_journal, risk_journal).",
            labels=["buffer"],
        )
        try:
            for buffer, count in sorted(self.counts.items()):
                family.add_metric([buffer], count())
            if self.behind_clock is not None:
                behind.add_metric([], self.behind_clock())
        except Exception:
            self.metrics._error("bounds")
            return []
        return [family, behind] if self.behind_clock is not None else [family]


class SinkCollector:
    """Deliveries per sink and outcome (`app.sinks.delivery.COUNTS`)."""

    def __init__(self, metrics: VigilMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "vigil_sink_deliveries",
            "Alert deliveries to sinks, by sink and outcome (delivered, attempt_failed, "
            "deferred, retried, dead_lettered, superseded).",
            labels=["sink", "outcome"],
        )
        try:
            from app.sinks.delivery import COUNTS

            for (sink, outcome), count in sorted(COUNTS.items()):
                family.add_metric([str(sink)[:MAX_LABEL_CHARS], str(outcome)], count)
        except Exception:
            self.metrics._error("sinks")
            return []
        return [family]


def _is_internal_topic(name: str, changelogs: Any) -> bool:
    """Changelog and assignor topics: their offsets are not the consumer group's progress."""
    return name in changelogs or name.endswith("-changelog") or "__assignor-__leader" in name


class FaustAppCollector:
    """Partitions, consumer lag, rebalancing and recovery of a Faust app, read at scrape time.

    Lag per partition = the consumer's highwater (log end offset, from its last fetch) minus the
    group's committed offset as the consumer last committed it (faust's private
    `Consumer._committed_offset`); with nothing committed yet, the last read offset + 1, else
    0 (so a fresh group reads as the whole log). Private attributes are read defensively: if
    Faust renames them, the lag series disappear and `vigil_metrics_collect_errors_total`
    counts the failure; the worker keeps running.
    """

    def __init__(self, app: Any, metrics: VigilMetrics) -> None:
        self.app = app
        self.metrics = metrics

    def _consumer(self) -> Any:
        if hasattr(self.app, "_consumer"):
            return self.app._consumer  # None until the worker started it
        return getattr(self.app, "consumer", None)

    def collect(self) -> Iterable[Metric]:
        families: list[Metric] = []
        families.extend(self._state())
        families.extend(self._partitions())
        return families

    def _state(self) -> list[Metric]:
        app = self.app
        try:
            rebalancing = GaugeMetricFamily(
                "vigil_rebalancing", "1 while a consumer group rebalance is in progress."
            )
            rebalancing.add_metric([], 1.0 if getattr(app, "rebalancing", False) else 0.0)
            recovering = GaugeMetricFamily(
                "vigil_recovering", "1 while tables are recovering from their changelogs."
            )
            in_recovery = getattr(app, "in_recovery", False)
            recovery = getattr(getattr(app, "tables", None), "recovery", None)
            in_recovery = getattr(recovery, "in_recovery", in_recovery)
            recovering.add_metric([], 1.0 if in_recovery else 0.0)
            rebalances = CounterMetricFamily(
                "vigil_rebalances", "Rebalances this worker took part in since start."
            )
            rebalances.add_metric([], float(getattr(app, "rebalancing_count", 0) or 0))
            families: list[Metric] = [rebalancing, recovering, rebalances]
        except Exception:
            self.metrics._error("app_state")
            return []
        try:
            recovery = app.tables.recovery
            remaining = GaugeMetricFamily(
                "vigil_recovery_remaining",
                "Changelog records still to apply before active tables are recovered.",
            )
            remaining.add_metric([], float(recovery.active_remaining_total()))
            families.append(remaining)
        except Exception:
            self.metrics._error("recovery")
        return families

    def _partitions(self) -> list[Metric]:
        consumer = self._consumer()
        assigned = GaugeMetricFamily(
            "vigil_partitions_assigned",
            "Partitions of each consumed topic assigned to this worker (changelogs excluded).",
            labels=["topic"],
        )
        if consumer is None:
            return [assigned]
        try:
            tps = list(consumer.assignment())
        except Exception:
            return [assigned]
        try:
            changelogs = set(getattr(self.app.tables, "changelog_topics", ()) or ())
        except Exception:
            changelogs = set()
        tps = sorted(
            (tp for tp in tps if not _is_internal_topic(tp.topic, changelogs)),
            key=lambda tp: (tp.topic, tp.partition),
        )
        per_topic: dict[str, int] = {}
        for tp in tps:
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + 1
        for topic, count in sorted(per_topic.items()):
            assigned.add_metric([topic], count)
        lag = GaugeMetricFamily(
            "vigil_consumer_lag",
            "Records between the log end and the committed offset, per assigned partition.",
            labels=["topic", "partition"],
        )
        total = GaugeMetricFamily(
            "vigil_consumer_lag_total", "Sum of vigil_consumer_lag over assigned partitions."
        )
        try:
            committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
            read: Mapping[Any, int | None] = getattr(consumer, "_read_offset", {})
            lag_sum = 0
            for tp in tps:
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue
                position = committed.get(tp)
                if position is None:
                    last_read = read.get(tp)
                    position = last_read + 1 if last_read is not None else 0
                value = max(0, int(highwater) - int(position))
                lag_sum += value
                lag.add_metric([tp.topic, str(tp.partition)], value)
            total.add_metric([], lag_sum)
        except Exception:
            self.metrics._error("consumer_lag")
            return [assigned]
        return [assigned, lag, total]


class MonitorBridge:
    """Faust's plain `Monitor` counters as metrics: the fallback when faust.sensors.prometheus
    cannot be used (reads public attributes of `app.monitor` at scrape time)."""

    COUNTERS = ("messages_received_total", "messages_sent", "events_total", "send_errors")
    GAUGES = ("messages_active", "events_active", "events_runtime_avg")
    LATENCIES = ("commit_latency", "send_latency", "assignment_latency")

    def __init__(self, app: Any, metrics: VigilMetrics) -> None:
        self.app = app
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        families: list[Metric] = []
        try:
            monitor = self.app.monitor
            for name in self.COUNTERS:
                value = getattr(monitor, name, None)
                if isinstance(value, int | float):
                    base = name.removesuffix("_total")
                    families.append(
                        CounterMetricFamily(
                            f"{FAUST_PREFIX}_{base}", f"Faust Monitor.{name}", value=value
                        )
                    )
            for name in self.GAUGES:
                value = getattr(monitor, name, None)
                if isinstance(value, int | float):
                    families.append(
                        GaugeMetricFamily(
                            f"{FAUST_PREFIX}_{name}", f"Faust Monitor.{name}", value=value
                        )
                    )
            for name in self.LATENCIES:
                history = list(getattr(monitor, name, None) or ())
                if history:
                    families.append(
                        GaugeMetricFamily(
                            f"{FAUST_PREFIX}_{name}_avg_ms",
                            f"Mean of Faust Monitor.{name} (recent history, ms)",
                            value=sum(history) / len(history),
                        )
                    )
        except Exception:
            self.metrics._error("faust_monitor")
            return []
        return families


def _monitor_class(prometheus_monitor: type, lean: bool) -> type:
    """Faust's PrometheusMonitor that also counts the messages Vigil hands to the producer
    itself (agents/sending.py bypasses Faust's send path and its sensor), and, when `lean`,
    with a lean per-message path: every message and event still counts (totals and per
    topic), but nothing else is kept per message, event or table operation. Faust calls these
    hooks for every record (~10 % of a worker's CPU with the full monitor,
    docs/performance.md); commits, sends through Faust, rebalances and web requests keep the
    full monitor's metrics."""

    class VigilPrometheusMonitor(prometheus_monitor):
        def count_sent(self, count: int) -> None:
            """Messages Vigil sent to the producer itself (agents/sending.py)."""
            self.messages_sent += count
            self._metrics.total_sent_messages.inc(count)

    if not lean:
        return VigilPrometheusMonitor

    class LeanPrometheusMonitor(VigilPrometheusMonitor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._per_topic: dict[str, Any] = {}

        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            self.messages_received_total += 1
            metrics = self._metrics
            metrics.messages_received.inc()
            counter = self._per_topic.get(tp.topic)
            if counter is None:
                counter = metrics.messages_received_per_topics.labels(topic=tp.topic)
                self._per_topic[tp.topic] = counter
            counter.inc()

        def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
            self.events_total += 1
            self._metrics.total_events.inc()

        def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
            pass

        def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
            pass

        def on_table_get(self, table: Any, key: Any) -> None:
            pass

        def on_table_set(self, table: Any, key: Any, value: Any) -> None:
            pass

        def on_table_del(self, table: Any, key: Any) -> None:
            pass

    return LeanPrometheusMonitor


def install_faust_sensor(
    app: Any, registry: CollectorRegistry, metrics: VigilMetrics, *, lean: bool = True
) -> str:
    """Make `app.monitor` Faust's PrometheusMonitor writing to `registry` (prefix
    `vigil_faust_`), `lean` on the per-message path (`_monitor_class`); without the page
    `setup_prometheus_sensors` would add (Vigil serves one `/metrics` for everything). Falls
    back to `MonitorBridge`. Returns which was used."""
    try:
        from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

        faust_metrics = FaustMetrics.create(registry, FAUST_PREFIX)
        app.monitor = _monitor_class(PrometheusMonitor, lean)(metrics=faust_metrics)
        return "prometheus"
    except Exception:
        log.warning("faust.sensors.prometheus unusable; bridging app.monitor", exc_info=True)
        registry.register(MonitorBridge(app, metrics))
        return "bridge"


def _max_services() -> int:
    raw = os.environ.get("VIGIL_METRICS_MAX_SERVICES", "")
    try:
        return max(1, int(raw)) if raw else MAX_SERVICES
    except ValueError:
        return MAX_SERVICES


#: The worker's registry and metrics (module-level helpers below use them).
REGISTRY = CollectorRegistry()
METRICS = VigilMetrics(REGISTRY, max_services=_max_services())

observe_ingest = METRICS.observe_ingest
observe_step = METRICS.observe_step
observe_batch = METRICS.observe_batch
refresh_window_state = METRICS.refresh_window_state
watch_pipeline = METRICS.watch_pipeline
watch_bound = METRICS.watch_bound
watch_behind_clock = METRICS.watch_behind_clock
source_pauses = METRICS.source_pauses
install = METRICS.install
render = METRICS.render
