"""Issue 23's acceptance in a real browser (Debian's Chromium driven by Playwright), over a
worker fed by the generator: every page renders its charts with data points, the anomaly page
lists a metric and a rate anomaly, alerts group and filter by a matcher, a silence made in the
page mutes its group, the drift list shows the plan's drift, the pipeline page shows lag. A
screenshot of each page goes to the test's output directory (tmp_path, or VIGIL_SCREENSHOTS).

Event times are compressed rather than waited for: 30 minutes of generated telemetry at 10
records/s, and, so as not to depend on where the generator happens to place its spikes, one
metric series with the detector's 150-window warm-up then a spike, and one host's Falco alerts
at one a minute then a burst (the generator's own anomalies usually come on top)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import orjson
import pytest

from app.generate import TelemetryGenerator
from tests.integration.test_dashboard_browser import browser  # noqa: F401
from tests.integration.test_web_api import READ, TOKENS, get, wait_for

pytestmark = pytest.mark.integration

ADMIN = TOKENS["VIGIL_ADMIN_TOKENS"]
MIN = 60_000
CATALOGUE = str(Path(__file__).resolve().parents[2] / "docs" / "catalogue.example.yaml")


def _metric(ts_ms: int, value: float) -> bytes:
    sample = {
        "name": "checkout_queue_depth",
        "labels": {"service": "checkout", "env": "prod"},
        "value": value,
        "timestamp": ts_ms,
    }
    return orjson.dumps(sample)


def _falco(ts_ms: int, n: int) -> bytes:
    """A Falco alert on host node-z (its own entity: the rate series the test watches)."""
    container = f"container_id=c0ffee{n % 3:06d} image=registry.example.com/checkout"
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms / 1000))
    when += f".{ts_ms % 1000:03d}000000Z"
    alert = {
        "hostname": "node-z",
        "output": f"Privileged container started (user=root {container} k8s.ns=prod)",
        "priority": "Informational",
        "rule": "Launch Privileged Container",
        "source": "syscall",
        "tags": ["container", "cis"],
        "time": when,
        "output_fields": {
            "container.id": f"c0ffee{n % 3:06d}",
            "container.image.repository": "registry.example.com/checkout",
            "k8s.ns.name": "prod",
            "user.name": "root",
            "evt.time": ts_ms * 1_000_000,
            "proc.cmdline": f"runc --privileged {n % 3}",
        },
    }
    return orjson.dumps(alert)


def telemetry(now_ms: int) -> list[tuple[str, int, bytes]]:
    """(family, event time, raw record), in event-time order."""
    gen = TelemetryGenerator(seed=23, bad_ratio=0.002)
    start = now_ms - 30 * MIN
    records = [(r.family, r.ts_ms, r.value) for r in gen.records(start, 10.0, 30 * 60 * 10)]
    spike_at = now_ms - 6 * MIN
    first = spike_at - 170 * MIN
    for i, ts in enumerate(range(first, spike_at, MIN)):
        records.append(("metrics", ts, _metric(ts, 100.0 + (i % 7) * 0.5)))
    for minute in range(3):
        records.append(
            ("metrics", spike_at + minute * MIN, _metric(spike_at + minute * MIN, 900.0))
        )
    burst_at = now_ms - 5 * MIN
    for ts in range(burst_at - 40 * MIN, burst_at, MIN):
        records.append(("falco", ts, _falco(ts, ts // MIN)))
    for i in range(60):
        ts = burst_at + i * 900
        records.append(("falco", ts, _falco(ts, i)))
    # After the spike and the burst, their own series go on, so that their partitions'
    # watermarks close those windows whatever else the generator sends there.
    for ts in range(spike_at + 3 * MIN, now_ms, MIN):
        records.append(("metrics", ts, _metric(ts, 101.0)))
    for ts in range(burst_at + 2 * MIN, now_ms, 30_000):
        records.append(("falco", ts, _falco(ts, ts // MIN)))
    records.sort(key=lambda r: r[1])
    return records


def _chart_points(page, section: str) -> int:
    return page.evaluate(
        """(section) => Object.values(window.vigilCharts)
             .filter((c) => c.section === section && c.u.root.querySelector("canvas"))
             .reduce((n, c) => n + c.points, 0)""",
        section,
    )


def test_every_page_charts_groups_silences_drift_and_lag(
    workers,
    browser,  # noqa: F811
    fixtures_dir,
    tmp_path,
):
    shots = Path(os.environ.get("VIGIL_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    worker = workers.start("web", VIGIL_CATALOGUE=CATALOGUE, **TOKENS)
    base = f"http://127.0.0.1:{worker.web_port}"
    now_ms = int(time.time() * 1000) - 10_000
    by_family: dict[str, list[bytes]] = {}
    for family, _, raw in telemetry(now_ms):
        by_family.setdefault(family, []).append(raw)
    for family, raws in by_family.items():
        workers.produce(workers.topic(f"raw:{family}"), raws, key=family.encode())
    plan = (fixtures_dir / "terraform/show-json-drift.json").read_bytes()  # drifted `ami`
    workers.produce(workers.topic("raw:terraform"), [plan], key=b"plan.json")

    def api(path: str):
        try:
            status, body = get(f"{base}{path}", READ)
        except OSError:
            return None
        return body if status == 200 else None

    def both_anomalies():
        body = api("/api/anomalies?limit=100")
        kinds = (body or {}).get("by_kind") or {}
        return body if kinds.get("metric") and kinds.get("rate") else None

    anomalies = wait_for(both_anomalies, 240)
    assert anomalies["by_kind"]["metric"] >= 1 and anomalies["by_kind"]["rate"] >= 1

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(base + "/")
    page.fill("#token", ADMIN)
    page.click("#signin")

    # Overview: events/s per source and alerts/s, and what to look at.
    page.wait_for_function("() => document.querySelector('#chart-rates canvas')", timeout=30_000)
    wait_for(lambda: _chart_points(page, "overview") > 0, 30)
    page.locator("#attention li a").first.wait_for(timeout=30_000)
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    # Anomalies: a metric and a rate series, each charted with its windows.
    page.click("#tabs button[data-tab=anomalies]")
    page.locator("#anomalycharts .chart[data-kind=metric] canvas").first.wait_for(timeout=30_000)
    page.locator("#anomalycharts .chart[data-kind=rate] canvas").first.wait_for(timeout=30_000)
    assert _chart_points(page, "anomalies") > 0
    page.screenshot(path=str(shots / "anomalies.png"), full_page=True)

    # Risk: each subject's score over time.
    page.click("#tabs button[data-tab=risk]")
    page.locator("#riskcharts .chart canvas").first.wait_for(timeout=60_000)
    wait_for(lambda: _chart_points(page, "risk") > 0, 30)
    page.screenshot(path=str(shots / "risk.png"), full_page=True)

    # Alerts: grouped, with what tells a group's alerts apart; filter by a matcher.
    page.click("#tabs button[data-tab=alerts]")
    page.locator("#alertgroups .group").first.wait_for(timeout=30_000)
    page.fill("#alertfilter", 'alertname="Launch Privileged Container", entity=~".*node-z.*"')
    page.click("#alertapply")
    wait_for(
        lambda: (
            page.locator("#alertgroups .group").count() >= 1
            and all(
                "Launch Privileged Container" in text
                for text in page.locator("#alertgroups .group").all_inner_texts()
            )
        ),
        30,
    )
    page.screenshot(path=str(shots / "alerts-filtered.png"), full_page=True)
    # From an alert to its entity's events, and on to its risk.
    page.locator("#alertgroups .group a.link", has_text="events").first.click()
    page.locator("#entitypanel", has_text="runtime_alert").wait_for(timeout=15_000)
    assert "host:node-z" in page.locator("#entitypanel").inner_text()
    group = page.locator("#alertgroups .group").first
    group_key = group.get_attribute("data-group")
    group.locator("button.silence-group").click()
    page.wait_for_function(
        """(key) => [...document.querySelectorAll("#alertgroups .group")].some(
             (g) => g.dataset.group === key && g.querySelector("header .silenced"))""",
        arg=group_key,
        timeout=30_000,
    )
    page.screenshot(path=str(shots / "alerts-silenced.png"), full_page=True)
    status, body = get(f"{base}/api/silences", READ)
    assert any(s["createdBy"] == "admin-token-1" for s in body["items"])
    # The read token cannot silence.
    status, _ = get(
        f"{base}/api/silences",
        READ,
        method="POST",
        json={"matchers": ['alertname="x"'], "comment": "no"},
    )
    assert status == 403

    # Drift: drifted resources with path, desired and observed (the plan's `ami`).
    page.click("#tabs button[data-tab=compliance]")
    drifted = page.locator("#driftrows tr", has_text="tf:test_instance.should_refresh")
    drifted.first.wait_for(timeout=60_000)
    assert drifted.first.locator("td").nth(1).inner_text() == "ami"
    page.screenshot(path=str(shots / "compliance.png"), full_page=True)

    # Pipeline: lag per topic and partition, clocks, and the lag chart.
    page.click("#tabs button[data-tab=pipeline]")
    page.locator("#pipelineworkers .lagtable tbody tr").first.wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector('#chart-lag canvas')", timeout=30_000)
    wait_for(lambda: _chart_points(page, "pipeline") > 0, 40)
    page.screenshot(path=str(shots / "pipeline.png"), full_page=True)
    page.close()
