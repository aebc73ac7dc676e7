"""Scrape-time collectors: alert accounting, bounded-buffer overflows, sink deliveries and
the Faust app's partitions, consumer lag, rebalancing and recovery."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from app.metrics.labels import MAX_LABEL_CHARS

if TYPE_CHECKING:
    from app.metrics.vigil_metrics import VigilMetrics

#: The accounting outcomes of tables/alerts/stage.py (`AlertStage.accounting`), besides `inputs`.
ALERT_OUTCOMES = ("notified", "folded", "silenced", "inhibited")


class AlertAccountingCollector:
    """`AlertStage.accounting` and `.stats` (tables/alerts/stage.py) of the watched pipelines."""

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
