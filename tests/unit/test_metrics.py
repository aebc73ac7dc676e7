"""Prometheus metrics (app/metrics/): agent helpers, cardinality caps, scrape-time collectors,
Faust's sensor in Vigil's registry, the exposition format, and that the alerting rules and the
Grafana dashboard only use metrics that exist."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections import Counter
from types import SimpleNamespace
from typing import NamedTuple

import pytest
import yaml
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from app import metrics as metrics_module
from app.metrics.faust_sensor import install_faust_sensor
from app.metrics.labels import OTHER, BoundedLabel
from app.metrics.vigil_metrics import VigilMetrics
from app.model.events import Event
from app.model.outputs import Origin, Output
from app.pipeline import Pipeline
from app.settings import REPO_ROOT, Settings
from app.sources.files import file_records

NOW = 1_700_000_000.0  # the fixed clock, seconds
NOW_MS = int(NOW * 1000)


def fresh(**kwargs) -> VigilMetrics:
    return VigilMetrics(CollectorRegistry(), clock=lambda: NOW, **kwargs)


def value(m: VigilMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def families(m: VigilMetrics, accept: str | None = None) -> dict:
    body, _ = m.render(accept)
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def event_output(entity: str, ts_ms: int) -> Output:
    return Output("events", entity, {"id": entity, "ts_ms": ts_ms, "source": "falco"})


# ---- agent helpers -------------------------------------------------------------------------


def _exposition(m: VigilMetrics) -> str:
    body, _ = m.render(None)
    return body.decode()


def test_a_batch_observed_at_once_moves_every_metric_as_one_call_per_record_does():
    """The agents report a batch at once (`observe_ingests`, `observe_steps`): every counter,
    histogram and gauge ends as it does when each record is reported alone."""
    raw = [
        ("falco", [event_output("h1", NOW_MS - 2_000), event_output("h2", NOW_MS)]),
        ("falco", [Output("deadletter", "k", {"error_code": "malformed_json", "id": "d"})]),
        (None, [event_output("h3", NOW_MS - 60_000)]),
        ("trivy", []),
    ]
    steps = [
        (
            [Output("alerts", "f", {"status": "firing", "severity": "high"})],
            "falco",
            NOW_MS,
            "events",
        ),
        ([Output("anomalies", "a", {"kind": "metric"})], "metrics", NOW_MS - 5_000, "events"),
        ([Output("risk", "s", {"service": "payments", "score": 42})], None, None, "clock"),
        ([], "trivy", NOW_MS + 5_000, "events"),
    ]
    alone, together = fresh(), fresh()
    for family, outputs in raw:
        alone.observe_ingest(family, outputs, NOW + 1.5)
    for outputs, source, ts_ms, topic in steps:
        alone.observe_step(outputs, source, ts_ms, topic=topic)
    together.observe_ingests(raw, NOW + 1.5)
    together.observe_steps(steps)
    assert _exposition(together) == _exposition(alone)
    assert value(together, "vigil_events_in_total", topic="raw", source="falco") == 2
    assert value(together, "vigil_events_out_total", topic="events", source="falco") == 2


def test_observe_ingest_counts_records_outputs_dead_letters_and_latency():
    m = fresh()
    m.observe_ingest("falco", [event_output("h1", NOW_MS - 2_000), event_output("h2", NOW_MS)])
    m.observe_ingest(
        "falco", [Output("deadletter", "k", {"error_code": "malformed_json", "id": "d"})]
    )
    m.observe_ingest(None, [Output("deadletter", "k", {"error_code": "too_large"})])

    assert value(m, "vigil_events_in_total", topic="raw", source="falco") == 2
    assert value(m, "vigil_events_in_total", topic="raw", source="unknown") == 1
    assert value(m, "vigil_events_out_total", topic="events", source="falco") == 2
    assert value(m, "vigil_events_out_total", topic="deadletter", source="falco") == 1
    assert value(m, "vigil_dead_letters_total", source="falco", error_code="malformed_json") == 1
    assert value(m, "vigil_dead_letters_total", source="unknown", error_code="too_large") == 1
    assert value(m, "vigil_event_latency_seconds_count", stage="ingest") == 2
    assert value(m, "vigil_event_latency_seconds_sum", stage="ingest") == pytest.approx(2.0)
    assert value(m, "vigil_event_latency_seconds_bucket", stage="ingest", le="0.01") == 1
    assert value(m, "vigil_event_latency_seconds_bucket", stage="ingest", le="2.5") == 2


def test_observe_batch_records_events_per_process_batch():
    m = fresh()
    for size in (1, 1, 37, 500):
        m.observe_batch(size)
    assert value(m, "vigil_batch_events_count") == 4
    assert value(m, "vigil_batch_events_sum") == 539
    assert value(m, "vigil_batch_events_bucket", le="1.0") == 2
    assert value(m, "vigil_batch_events_bucket", le="50.0") == 3


def test_observe_step_counts_every_derived_output_by_kind():
    m = fresh()
    outputs = [
        Output("windows", "s", {"id": "w"}),
        Output("anomalies", "s", {"kind": "rate", "score": 0.97}),
        Output("alerts", "f", {"status": "firing", "severity": "high"}),
        Output("alerts", "f", {"status": "resolved", "severity": "high"}),
        Output("drift", "r", {"status": "drifted"}),
        Output("late", "e", {"lateness_ms": 45_000}),
        Output("risk", "payments", {"entity": "payments", "score": 72}),
        Output("risk", "search", {"service": "search", "entity": "x", "score": 12.5}),
    ]
    m.observe_step(outputs, "falco", NOW_MS - 3 * 3_600_000)  # a three-hour-old replayed event
    m.observe_step([], "trivy", NOW_MS + 5_000)  # clock skew: counted as zero latency

    assert value(m, "vigil_events_in_total", topic="events", source="falco") == 1
    assert value(m, "vigil_events_in_total", topic="events", source="trivy") == 1
    assert value(m, "vigil_events_out_total", topic="alerts", source="falco") == 2
    assert value(m, "vigil_events_out_total", topic="windows", source="falco") == 1
    assert value(m, "vigil_anomalies_total", kind="rate") == 1
    assert value(m, "vigil_alerts_total", status="firing", severity="high") == 1
    assert value(m, "vigil_alerts_total", status="resolved", severity="high") == 1
    assert value(m, "vigil_drift_events_total", status="drifted") == 1
    assert value(m, "vigil_late_events_total", source="falco") == 1
    assert value(m, "vigil_risk_score", service="payments") == 72
    assert value(m, "vigil_risk_score", service="search") == 12.5
    # Hours-old events land in the hour buckets, not only in +Inf.
    assert value(m, "vigil_event_latency_seconds_bucket", stage="process", le="7200.0") == 1
    assert value(m, "vigil_event_latency_seconds_bucket", stage="process", le="14400.0") == 2
    assert value(m, "vigil_event_latency_seconds_bucket", stage="process", le="0.01") == 1
    assert value(m, "vigil_event_latency_seconds_count", stage="process") == 2


def test_control_topic_and_missing_event_time():
    m = fresh()
    m.observe_step(
        [Output("deadletter", "k", {"error_code": "invalid_value"})], None, None, topic="control"
    )
    assert value(m, "vigil_events_in_total", topic="control", source="unknown") == 1
    assert value(m, "vigil_dead_letters_total", source="unknown", error_code="invalid_value") == 1
    assert value(m, "vigil_event_latency_seconds_count", stage="process") == 0


def test_the_real_pipeline_is_counted_with_its_accounting(fixtures_dir):
    """Falco fixture through the offline pipeline: counters match the outputs and the alert
    stage's accounting shows up at scrape time."""
    m = fresh()
    ingest, process = Pipeline(Settings()), Pipeline(Settings())
    m.watch_pipeline(process)
    emitted: Counter[str] = Counter()
    ingested = 0
    path = fixtures_dir / "falco" / "falco-0.31.1-host-alerts.jsonl"
    for n, (_, raw) in enumerate(file_records(path)):
        outputs = ingest.ingest(raw, "falco", Origin("telemetry.falco", 0, n, None))
        m.observe_ingest("falco", outputs)
        ingested += len(outputs)
        for out in outputs:
            event = Event.from_dict(out.value)
            step = process.process(event, 0)
            step.commit()
            m.observe_step(step.outputs, event.source, event.ts_ms)
            emitted.update(o.topic for o in step.outputs)
    flushed = process.flush()
    flushed.commit()
    m.observe_step(flushed.outputs, "flush")
    emitted.update(o.topic for o in flushed.outputs)

    accounting = process.alerts.accounting
    assert accounting["inputs"] > 0 and emitted["alerts"] > 0
    assert value(m, "vigil_alert_inputs_total") == accounting["inputs"]
    for outcome in ("notified", "folded", "silenced", "inhibited"):
        assert value(m, "vigil_alert_outcomes_total", outcome=outcome) == accounting[outcome]
    assert value(m, "vigil_dedup_ratio") == pytest.approx(
        accounting["notified"] / accounting["inputs"]
    )
    assert value(m, "vigil_alert_notifications_total") == process.alerts.stats["notifications"]
    assert value(m, "vigil_alert_records_total") == process.alerts.stats["records"]
    fam = families(m)
    assert sum(s.value for s in fam["vigil_alerts"].samples) == emitted["alerts"]
    assert sum(s.value for s in fam["vigil_events_out"].samples) == ingested + sum(emitted.values())
    assert value(m, "vigil_events_in_total", topic="events", source="falco") == ingested


def test_dedup_ratio_is_absent_before_any_alert():
    m = fresh()
    m.watch_pipeline(SimpleNamespace(alerts=SimpleNamespace(accounting=Counter(), stats={})))
    fam = families(m)
    assert fam["vigil_dedup_ratio"].samples == []
    assert value(m, "vigil_alert_inputs_total") == 0
    assert value(m, "vigil_alert_outcomes_total", outcome="silenced") == 0


# ---- cardinality ---------------------------------------------------------------------------


def test_risk_services_are_capped_and_the_rest_reported_as_other():
    m = fresh(max_services=3)
    for n, service in enumerate(["a", "b", "c", "d", "e", "a"]):
        m.observe_step([Output("risk", service, {"entity": service, "score": 10 + n})], "x")
    services = {s.labels["service"]: s.value for s in families(m)["vigil_risk_score"].samples}
    assert services == {"a": 15, "b": 11, "c": 12, OTHER: 14}  # `other`: the latest beyond
    assert value(m, "vigil_metric_label_overflow_total", label="service") == 2


def test_every_data_fed_label_is_bounded():
    m = fresh(max_sources=4)
    for n in range(1000):
        m.observe_step(
            [
                Output("deadletter", "k", {"error_code": f"code-{n}"}),
                Output("alerts", "f", {"status": f"s{n}", "severity": f"v{n}"}),
                Output("anomalies", "s", {"kind": f"k{n}"}),
            ],
            f"source-{n}",
        )
    fam = families(m)
    for name in ("vigil_events_in", "vigil_events_out", "vigil_dead_letters", "vigil_alerts"):
        assert len(fam[name].samples) <= 64, name
    assert {s.labels["source"] for s in fam["vigil_events_in"].samples} == {
        "source-0",
        "source-1",
        "source-2",
        "source-3",
        OTHER,
    }
    assert len(fam["vigil_anomalies"].samples) == 17  # 16 kinds + other
    assert value(m, "vigil_events_in_total", topic="events", source=OTHER) == 996
    # Cached children stay bounded too: no per-event label objects.
    assert len(m._in._cache) == 5 and len(m._dead._cache) <= 5 * 33


def test_bounded_label_basics():
    overflowed: list[str] = []
    label = BoundedLabel("x", 2, overflowed.append)
    assert [label(v) for v in ["a", None, "c", "a", ""]] == ["a", "unknown", OTHER, "a", OTHER]
    assert overflowed == ["x", "x"] and len(label) == 2
    assert BoundedLabel("y", 5)("z" * 500) == "z" * 120
    assert BoundedLabel("y", 5)(["unhashable"]) == OTHER
    with pytest.raises(ValueError):
        BoundedLabel("z", 0)


# ---- exposition ----------------------------------------------------------------------------


def test_render_parses_as_prometheus_text_and_uses_its_own_registry():
    m = fresh()
    m.observe_ingest("falco", [event_output("h", NOW_MS)])
    body, content_type = m.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    fam = families(m)
    assert fam["vigil_events_in"].type == "counter"
    assert fam["vigil_event_latency_seconds"].type == "histogram"
    assert fam["vigil_risk_score"].type == "gauge"
    assert b"_created" not in body  # no doubled series
    # Negotiation: OpenMetrics when Prometheus asks for it.
    om_body, om_type = m.render("application/openmetrics-text; version=1.0.0")
    assert om_type.startswith("application/openmetrics-text") and om_body.endswith(b"# EOF\n")
    # The module's registry is Vigil's own, not prometheus_client's global one.
    assert metrics_module.REGISTRY is not DEFAULT_REGISTRY
    assert DEFAULT_REGISTRY.get_sample_value("vigil_events_in_total", {}) is None
    module_body, _ = metrics_module.render()
    assert b"vigil_event_latency_seconds_bucket" in module_body


# ---- Faust app collector and sensor --------------------------------------------------------


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    def __init__(self, highwaters, committed, read, fail_highwater=False):
        self.highwaters = highwaters
        self._committed_offset = committed
        self._read_offset = read
        self.fail_highwater = fail_highwater

    def assignment(self):
        return set(self.highwaters)

    def highwater(self, tp):
        if self.fail_highwater:
            raise RuntimeError("consumer thread gone")
        return self.highwaters[tp]


def fake_app(consumer, **state) -> SimpleNamespace:
    recovery = SimpleNamespace(
        active_remaining_total=lambda: state.get("remaining", 0),
        in_recovery=state.get("in_recovery", False),
    )
    tables = SimpleNamespace(changelog_topics={"vigil-series-changelog"}, recovery=recovery)
    return SimpleNamespace(
        _consumer=consumer,
        tables=tables,
        rebalancing=state.get("rebalancing", False),
        rebalancing_count=state.get("count", 0),
        monitor=None,
    )


def test_app_collector_reports_lag_partitions_and_state():
    ev0, ev1, raw0 = TP("vigil.events", 0), TP("vigil.events", 1), TP("telemetry.falco", 0)
    changelog, fresh_tp = TP("vigil-series-changelog", 0), TP("telemetry.scans", 3)
    consumer = FakeConsumer(
        {ev0: 120, ev1: 50, raw0: 10, changelog: 9999, fresh_tp: 7},
        committed={ev0: 100, ev1: 50, raw0: None},
        read={raw0: 4},
    )
    m = fresh()
    m.install(fake_app(consumer, rebalancing=True, in_recovery=True, count=3, remaining=42))
    assert value(m, "vigil_consumer_lag", topic="vigil.events", partition="0") == 20
    assert value(m, "vigil_consumer_lag", topic="vigil.events", partition="1") == 0
    assert value(m, "vigil_consumer_lag", topic="telemetry.falco", partition="0") == 5  # read+1
    assert value(m, "vigil_consumer_lag", topic="telemetry.scans", partition="3") == 7  # fresh
    assert value(m, "vigil_consumer_lag", topic="vigil-series-changelog", partition="0") is None
    assert value(m, "vigil_consumer_lag_total") == 32
    assert value(m, "vigil_partitions_assigned", topic="vigil.events") == 2
    assert value(m, "vigil_partitions_assigned", topic="vigil-series-changelog") is None
    assert value(m, "vigil_rebalancing") == 1
    assert value(m, "vigil_recovering") == 1
    assert value(m, "vigil_rebalances_total") == 3
    assert value(m, "vigil_recovery_remaining") == 42


def test_app_collector_survives_a_broken_or_unstarted_consumer():
    m = fresh()
    app = fake_app(None)
    m.install(app)
    fam = families(m)  # no consumer yet: no lag, no error
    assert "vigil_consumer_lag" not in fam and value(m, "vigil_rebalancing") == 0
    app._consumer = FakeConsumer({TP("vigil.events", 0): 5}, {}, {}, fail_highwater=True)
    fam = families(m)
    assert "vigil_consumer_lag" not in fam
    assert value(m, "vigil_partitions_assigned", topic="vigil.events") == 1
    # Counted once per failing scrape (each `value` call is a scrape).
    assert value(m, "vigil_metrics_collect_errors_total", collector="consumer_lag") >= 1
    # A Faust without the private attributes at all: treated as nothing committed or read.
    consumer = SimpleNamespace(assignment=lambda: {TP("vigil.events", 0)}, highwater=lambda tp: 9)
    app._consumer = consumer
    assert value(m, "vigil_consumer_lag", topic="vigil.events", partition="0") == 9


def test_faust_prometheus_sensor_writes_to_vigils_registry():
    m = fresh()
    app = fake_app(None)
    m.install(app)
    m.install(app)  # idempotent: no duplicate registration
    from faust.sensors.prometheus import PrometheusMonitor

    assert isinstance(app.monitor, PrometheusMonitor)
    app.monitor.on_message_in(TP("vigil.events", 0), 7, SimpleNamespace())
    assert value(m, "vigil_faust_messages_received_total") == 1
    assert value(m, "vigil_faust_messages_received_per_topic_total", topic="vigil.events") == 1
    # Lean per-message path: events and Vigil's own sends count; nothing is kept per message.
    assert app.monitor.on_stream_event_in(TP("vigil.events", 0), 7, None, None) is None
    assert value(m, "vigil_faust_total_events_total") == 1
    app.monitor.count_sent(3)
    assert value(m, "vigil_faust_total_sent_messages_total") == 3
    app.monitor.on_table_set(SimpleNamespace(name="series"), "k", 1)
    assert not app.monitor.tp_read_offsets


def test_lean_sensor_counts_faust_sends_and_end_offsets_as_faust_s_own_does():
    """Sends through Faust's send path (the risk and control agents' changelog records):
    their counter per topic and the end offsets per partition read the same as the full
    monitor's."""
    lean, full = fresh(), fresh()
    lean_app, full_app = fake_app(None), fake_app(None)
    lean.install(lean_app)
    full.install(full_app, lean=False)
    tp = TP("vigil-entity-stats-changelog", 2)
    for app in (lean_app, full_app):
        for _ in range(3):
            state = app.monitor.on_send_initiated(None, tp.topic, None, 1, 1)
            assert isinstance(state, float)
        app.monitor.track_tp_end_offset(tp, 40)
        app.monitor.track_tp_end_offset(tp, 41)
    for m, app in ((lean, lean_app), (full, full_app)):
        assert app.monitor.messages_sent == 3
        topic = f"topic.{tp.topic}"
        assert value(m, "vigil_faust_topic_messages_sent_total", topic=topic) == 3
        assert (
            value(m, "vigil_faust_topic_partition_end_offset", topic=tp.topic, partition="2") == 41
        )
        assert app.monitor.tp_end_offsets[tp] == 41


def test_full_faust_sensor_keeps_its_per_message_path_and_counts_vigils_sends():
    m = fresh()
    app = fake_app(None)
    m.install(app, lean=False)
    app.monitor.on_message_in(TP("vigil.events", 0), 7, SimpleNamespace())
    assert app.monitor.tp_read_offsets  # Faust's own bookkeeping per message
    app.monitor.count_sent(2)
    assert value(m, "vigil_faust_total_sent_messages_total") == 2


def test_monitor_bridge_when_faust_prometheus_is_unusable(monkeypatch):
    monkeypatch.setitem(sys.modules, "faust.sensors.prometheus", None)  # ImportError
    m = fresh()
    app = fake_app(None)
    app.monitor = SimpleNamespace(
        messages_received_total=12,
        messages_active=2,
        events_total=10,
        events_active=1,
        events_runtime_avg=0.004,
        messages_sent=3,
        send_errors=0,
        commit_latency=[10.0, 30.0],
    )
    assert install_faust_sensor(app, m.registry, m) == "bridge"
    assert value(m, "vigil_faust_messages_received_total") == 12
    assert value(m, "vigil_faust_events_active") == 1
    assert value(m, "vigil_faust_commit_latency_avg_ms") == 20


# ---- window state scan ---------------------------------------------------------------------


def test_window_state_scan_counts_series_and_open_windows():
    m = fresh()
    items = [
        ("h|r|falco_alerts", {"kind": "rate", "open": {"0": {}, "60000": {}}, "p": 0}),
        ("h|m|cpu", {"kind": "metric", "open": {}, "p": 0}),
        ("h|m|cpu#det", {"state": 1}),
        ("~wm|falco", {"wm": 5, "p": 0}),
    ] * 300
    assert asyncio.run(m.refresh_window_state(iter(items), yield_every=100)) == (600, 600)
    assert value(m, "vigil_window_series") == 600
    assert value(m, "vigil_windows_open") == 600

    def broken():
        yield items[0]
        raise RuntimeError("dictionary changed size during iteration")

    asyncio.run(m.refresh_window_state(broken()))
    assert value(m, "vigil_window_series") == 600  # kept
    assert value(m, "vigil_metrics_collect_errors_total", collector="window_state") == 1


# ---- rules and dashboard use real metric names ---------------------------------------------


def _exposed_names() -> set[str]:
    """Every sample name a fully wired worker exposes (with each kind of observation)."""
    m = fresh()
    tp = TP("vigil.events", 0)
    m.install(fake_app(FakeConsumer({tp: 3}, {tp: 1}, {})))
    m.watch_pipeline(
        SimpleNamespace(
            alerts=SimpleNamespace(
                accounting=Counter(inputs=2, notified=1), stats=Counter(resolved_timeout=1)
            )
        )
    )
    m.observe_ingest("falco", [event_output("h", NOW_MS)])
    m.observe_step(
        [
            Output(
                topic,
                "k",
                {
                    "error_code": "x",
                    "status": "s",
                    "severity": "high",
                    "kind": "rate",
                    "score": 1,
                    "entity": "svc",
                },
            )
            for topic in ("deadletter", "alerts", "anomalies", "drift", "late", "risk")
        ],
        "falco",
        NOW_MS,
    )
    m.observe_step([Output("risk", "k", {"entity": f"s{n}", "score": 1}) for n in range(60)], "x")
    m.collect_errors.labels("x").inc()
    return {s.name for f in families(m).values() for s in f.samples}


def _vigil_names(text: str) -> set[str]:
    return set(re.findall(r"\b(vigil_[a-z0-9_]+)\b", text))


def test_alerting_rules_and_dashboard_only_use_exposed_metrics():
    exposed = _exposed_names()
    rules = yaml.safe_load((REPO_ROOT / "docker/prometheus/vigil-rules.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) >= 6
    used = set().union(*(_vigil_names(e) for e in exprs))
    assert used and used <= exposed, used - exposed

    dashboard = json.loads((REPO_ROOT / "docker/grafana/vigil-dashboard.json").read_text())
    targets = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", []) if "expr" in t]
    assert len(targets) >= 15
    used = set().union(*(_vigil_names(e) for e in targets))
    assert used <= exposed, used - exposed
    for wanted in (
        "vigil_events_in_total",
        "vigil_dead_letters_total",
        "vigil_consumer_lag",
        "vigil_event_latency_seconds_bucket",
        "vigil_alerts_total",
        "vigil_anomalies_total",
        "vigil_risk_score",
    ):
        assert wanted in used, wanted
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_bounded_buffers_report_their_overflow() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    metrics = VigilMetrics()
    count = {"n": 3}
    metrics.watch_bound("held_events", lambda: count["n"])
    count["n"] = 5
    body, _ = metrics.render()
    samples = {
        (s.name, s.labels.get("buffer")): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("vigil_bound_overflow_total", "held_events")] == 5


def test_events_behind_the_partition_clock_are_counted() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from app import metrics as module

    assert module.watch_behind_clock  # what agents/process.py calls
    metrics = VigilMetrics()
    count = {"n": 0}
    metrics.watch_behind_clock(lambda: count["n"])
    count["n"] = 7
    body, _ = metrics.render()
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples["vigil_events_behind_clock_total"] == 7


def test_observing_a_batch_at_once_gives_what_observing_each_amount_gives() -> None:
    """`observe_all` moves prometheus-client's buckets and sum itself: bounds are inclusive,
    amounts past the last bound land in +Inf, and nothing observed moves nothing."""
    from prometheus_client import Histogram

    from app.metrics.vigil_metrics import LATENCY_BUCKETS, observe_all

    amounts = [0.0, 0.01, 0.010001, 0.05, 3.2, 604_800.0, 1e9, 0.2, 0.2]
    one_by_one, at_once = CollectorRegistry(), CollectorRegistry()
    for registry, observe in ((one_by_one, None), (at_once, observe_all)):
        child = Histogram("lag", "", ["stage"], buckets=LATENCY_BUCKETS, registry=registry)
        child = child.labels("ingest")
        if observe is None:
            for amount in amounts:
                child.observe(amount)
        else:
            observe(child, [])
            observe(child, amounts)

    def samples(registry: CollectorRegistry) -> list[tuple[str, dict, float]]:
        return [
            (s.name, s.labels, s.value)
            for family in registry.collect()
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    assert samples(at_once) == samples(one_by_one)
    assert ("lag_bucket", {"stage": "ingest", "le": "0.01"}, 2.0) in samples(at_once)
    assert ("lag_count", {"stage": "ingest"}, 9.0) in samples(at_once)
