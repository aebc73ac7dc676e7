"""Prometheus metrics of a Vigil worker, in a registry of their own, served at `/metrics`.

Everything lives in `REGISTRY` (not prometheus_client's global default), so tests and the
worker never see foreign or duplicated collectors. Three kinds of metrics:

- **Pushed by the agents** through near-free helpers (one cached child per label set, no label
  objects created per event): `observe_ingest(family, outputs)` after the ingest agent sent a
  raw record's outputs, `observe_step(outputs, source, event_time_ms)` after the process agent's
  step was confirmed, and `observe_ingests` / `observe_steps` for a batch of them (each counter
  moved once per label). They count records in and out per topic and source, dead letters by error
  code, alert notification records by status and severity, anomalies, drift, late events, risk
  per service, and the end-to-end latency (event time -> emission).
- **Read at scrape time** by collectors: the alert stage's accounting (`watch_pipeline`), the
  Faust app's partitions, consumer lag, rebalancing and recovery (`install`), sink deliveries.
- **Faust's own sensor** (`faust.sensors.prometheus.PrometheusMonitor`) installed as
  `app.monitor` with this registry, prefix `vigil_faust_` (messages, events, sent messages,
  commit and send latency, rebalances), lean on the per-message path (counters only, no
  per-message or per-table-operation bookkeeping); a small bridge over `faust.sensors.Monitor`
  is used if that module ever stops working.

Modules: `labels` (bounded label values), `vigil_metrics` (the metric definitions and the
agents' helpers), `collectors` (scrape-time: alert accounting, bounds, sinks, consumer lag and
the app's health), `faust_sensor` (Faust's monitor, lean or full). This package holds the
worker's one registry, `REGISTRY`, and `METRICS`, whose helpers the agents call.

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

from prometheus_client import CollectorRegistry, disable_created_metrics

from app.metrics.vigil_metrics import VigilMetrics
from app.settings import Settings

# No `*_created` series: they double every counter's series for nothing Vigil's rules or
# dashboard use. Process-wide (prometheus_client keeps it as a module flag).
disable_created_metrics()

#: The worker's registry and metrics (module-level helpers below use them).
REGISTRY = CollectorRegistry()
METRICS = VigilMetrics(REGISTRY, max_services=Settings.from_env().metrics_max_services)

observe_ingest = METRICS.observe_ingest
observe_ingests = METRICS.observe_ingests
observe_step = METRICS.observe_step
observe_steps = METRICS.observe_steps
observe_batch = METRICS.observe_batch
refresh_window_state = METRICS.refresh_window_state
watch_pipeline = METRICS.watch_pipeline
watch_bound = METRICS.watch_bound
watch_behind_clock = METRICS.watch_behind_clock
source_pauses = METRICS.source_pauses
install = METRICS.install
render = METRICS.render
