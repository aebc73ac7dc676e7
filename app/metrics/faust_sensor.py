"""Faust's own per-message sensor: a lean or full PrometheusMonitor as `app.monitor`, or a
bridge over Faust's plain Monitor when faust.sensors.prometheus cannot be used."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from app.metrics.labels import CachedChildren

if TYPE_CHECKING:
    from app.metrics.vigil_metrics import VigilMetrics

log = logging.getLogger(__name__)

FAUST_PREFIX = "vigil_faust"


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


def count_sent(app: Any, count: int) -> None:
    """Count records Vigil handed to the producer itself, past Faust's send path and its sensor
    (outputs: app/runtime/sending.py; table changelogs: app/runtime/direct_writes.py), with the
    monitor's `count_sent` (`_monitor_class`) when it has one."""
    counter = getattr(getattr(app, "monitor", None), "count_sent", None)
    if counter is not None and count:
        counter(count)


def _monitor_class(prometheus_monitor: type, lean: bool) -> type:
    """Faust's PrometheusMonitor that also counts the messages Vigil hands to the producer
    itself (app/runtime/sending.py bypasses Faust's send path and its sensor), and, when `lean`,
    with a lean per-message path: every message and event still counts (totals and per
    topic), but nothing else is kept per message, event or table operation. Faust calls these
    hooks for every record (~10 % of a worker's CPU with the full monitor,
    docs/performance.md); commits, sends through Faust, rebalances and web requests keep the
    full monitor's metrics."""

    class VigilPrometheusMonitor(prometheus_monitor):
        def count_sent(self, count: int) -> None:
            """Messages Vigil sent to the producer itself (app/runtime/sending.py)."""
            self.messages_sent += count
            self._metrics.total_sent_messages.inc(count)

    if not lean:
        return VigilPrometheusMonitor

    class LeanPrometheusMonitor(VigilPrometheusMonitor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            metrics = self._metrics
            self._received = CachedChildren(metrics.messages_received_per_topics)
            self._sent = CachedChildren(metrics.topic_messages_sent)
            self._end_offset = CachedChildren(metrics.topic_partition_end_offset)

        def on_send_initiated(
            self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
        ) -> Any:
            """As Faust's (a count per topic; the send time for its latency), with the
            labelled counter looked up once per topic, not built per send."""
            self.messages_sent += 1
            self.messages_sent_by_topic[topic] += 1
            self._sent(f"topic.{topic}").inc()
            return self.time()

        def track_tp_end_offset(self, tp: Any, offset: int) -> None:
            """As Faust's, with the labelled gauge looked up once per partition."""
            self.tp_end_offsets[tp] = offset
            self._end_offset(tp.topic, tp.partition).set(offset)

        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            self.messages_received_total += 1
            self._metrics.messages_received.inc()
            self._received(tp.topic).inc()

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
