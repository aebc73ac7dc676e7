"""`VigilMetrics`: every Vigil metric, the helpers the agents push through, and the
scrape-time collectors it registers (app/metrics/collectors.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from app.metrics.collectors import (
    AlertAccountingCollector,
    BoundsCollector,
    FaustAppCollector,
    SinkCollector,
)
from app.metrics.faust_sensor import install_faust_sensor
from app.metrics.labels import MAX_CODES, MAX_SMALL, MAX_SOURCES, BoundedLabel, CachedChildren
from app.model.outputs import Output
from app.settings.core import MAX_SERVICES

log = logging.getLogger(__name__)

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


def observe_all(histogram: Any, amounts: list[float]) -> None:
    """`histogram.observe(a)` for every amount, with each bucket and the sum moved once for
    them all: `observe` takes two locks per amount, which a batch's events paid one by one.
    Reads prometheus-client's own fields (`_upper_bounds`, `_buckets`, `_sum`; the version is
    pinned, and tests compare the result with `observe`)."""
    if not amounts:
        return
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    for amount in amounts:
        counts[bisect_left(bounds, amount)] += 1  # the first bucket with amount <= bound
    for bucket, n in zip(histogram._buckets, counts, strict=True):
        if n:
            bucket.inc(n)
    histogram._sum.inc(sum(amounts))


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
        overflow = CachedChildren(self.label_overflow)

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
            "slowest in event time (app/runtime/source_alignment.py), by stage (ingest: raw "
            "topics, process: vigil.events).",
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
        self._in = CachedChildren(self.events_in)
        self._out = CachedChildren(self.events_out)
        self._dead = CachedChildren(self.dead_letters)
        self._alerts = CachedChildren(self.alerts)
        self._anomalies = CachedChildren(self.anomalies)
        self._drift = CachedChildren(self.drift)
        self._late = CachedChildren(self.late)
        self._risk = CachedChildren(self.risk)
        self._latency = CachedChildren(self.latency)
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
        self.observe_ingests([(family, outputs)], now)

    def observe_ingests(
        self, records: Iterable[tuple[str | None, Iterable[Output]]], now: float | None = None
    ) -> None:
        """Raw records ingested, each as `(family, outputs sent)`, their outputs sent at `now`
        (None: now); the counters move once per label for them all."""
        now_s = self.clock() if now is None else now
        lags: list[float] = []
        ins: Tally[str] = Tally()
        outs: Tally[tuple[str, str]] = Tally()
        for family, outputs in records:
            source = self._source(family)
            ins[source] += 1
            for out in outputs:
                self._emitted(out, source, outs)
                if out.topic == "events":
                    ts_ms = out.value.get("ts_ms")
                    if isinstance(ts_ms, int):
                        lags.append(max(0.0, now_s - ts_ms / 1000.0))
        observe_all(self._latency("ingest"), lags)
        for source, n in ins.items():
            self._in("raw", source).inc(n)
        self._count_emitted(outs)

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
        self.observe_steps([(outputs, source, event_time_ms, topic)], now)

    def observe_steps(
        self,
        steps: Iterable[tuple[Iterable[Output], str | None, int | None, str]],
        now: float | None = None,
    ) -> None:
        """Records processed and their outputs confirmed, each as `(outputs, source, event
        time in ms or None, topic)` (see `observe_step`); the counters move once per label."""
        now_s = self.clock() if now is None else now
        lags: list[float] = []
        ins: Tally[tuple[str, str]] = Tally()
        outs: Tally[tuple[str, str]] = Tally()
        for outputs, source, event_time_ms, topic in steps:
            label = self._source(source)
            ins[topic, label] += 1
            for out in outputs:
                self._emitted(out, label, outs)
            if event_time_ms is not None:
                lags.append(max(0.0, now_s - event_time_ms / 1000.0))
        observe_all(self._latency("process"), lags)
        for (topic, label), n in ins.items():
            self._in(topic, label).inc(n)
        self._count_emitted(outs)

    def _emitted(self, out: Output, source: str, counts: Tally[tuple[str, str]]) -> None:
        """Count `out` in `counts` (see `_count_emitted`); its topic's own metrics move now."""
        counts[out.topic, source] += 1
        handler = self._handlers.get(out.topic)
        if handler is not None and isinstance(out.value, dict):
            handler(out.value, source)

    def _count_emitted(self, counts: Tally[tuple[str, str]]) -> None:
        for (topic, source), n in counts.items():
            self._out(topic, source).inc(n)

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
