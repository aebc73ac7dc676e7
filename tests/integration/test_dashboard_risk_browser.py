"""The dashboard's Risk tab and the Overview's top risky services, in a real browser, over a
worker fed the release-gate scenario (KEV critical, Critical Falco alert, failing CI on
payments; tests/integration/test_gate_broker.py)."""

from __future__ import annotations

import re
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.settings import REPO_ROOT
from app.sources.normalize import Normalizer
from tests.integration.harness import WorkerFactory
from tests.integration.test_dashboard_browser import SCREENSHOTS, browser  # noqa: F401
from tests.integration.test_gate_broker import CATALOGUE, HOUR, MIN, heartbeat, scenario
from tests.integration.test_web_api import READ, TOKENS, get, wait_for

pytestmark = pytest.mark.integration
assert CATALOGUE.startswith(str(REPO_ROOT))


@pytest.fixture
def risk_workers(request, bootstrap, isolation, tmp_path):
    """Workers with the test catalogue; after a failure their stacks go to their logs."""
    factory = WorkerFactory(bootstrap, {**isolation, "VIGIL_CATALOGUE": CATALOGUE}, tmp_path)
    yield factory
    failed = getattr(getattr(request.node, "rep_call", None), "failed", False)
    factory.stop_all(dump_stacks=failed)


def events_processed(base: str) -> float:
    """Canonical events the worker has processed (`vigil_events_in_total{topic="events"}`)."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "vigil_events_in_total" and sample.labels.get("topic") == "events"
    )


def test_risk_tab_and_top_risky_services(risk_workers, browser):  # noqa: F811
    workers = risk_workers
    now_ms = int(time.time() * 1000)
    records, blocking = scenario(now_ms)
    # The finding, the Falco alert and the failing CI run first, then heartbeats on every
    # partition: the alert timers fire and scores are emitted. Alert timers run on the
    # partition's watermark over all sources, so the heartbeats must be processed after the
    # problems (raw topics produced at once interleave in any order: docs/crash-safety.md).
    problems = [r for r in records[:blocking] if r[0] != "metrics"]
    start = now_ms // MIN * MIN - 50 * HOUR
    heartbeats = [r for r in records[:blocking] if r[0] == "metrics"]
    heartbeats += [("metrics", heartbeat(start + 6 * MIN + p * 1000, p)) for p in range(4)]
    worker = workers.start("web", **TOKENS)
    base = f"http://127.0.0.1:{worker.web_port}"
    for family, raw in problems:
        workers.produce(workers.topic(f"raw:{family}"), [raw])
    expected = sum(len(Normalizer().normalize(raw, family=family)) for family, raw in problems)
    wait_for(lambda: events_processed(base) >= expected, 90)
    for family, raw in heartbeats:
        workers.produce(workers.topic(f"raw:{family}"), [raw])

    def payments_scored():
        try:
            status, body = get(f"{base}/api/tables/risk?key=payments", READ)
        except OSError:
            return None
        value = (body or {}).get("value") or {}
        # The problems score high (not 100: docs/risk.md); event time stops at the heartbeats,
        # so the score stays where it is once emitted.
        return value if status == 200 and (value.get("emit") or {}).get("score", 0) >= 40 else None

    state = wait_for(payments_scored, 90)
    assert state["type"] == "service"
    score = str(state["emit"]["score"])

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(base + "/")
    page.fill("#token", TOKENS["VIGIL_READ_TOKENS"])
    page.click("#signin")
    top = page.locator("#topriskrows tr", has_text="payments")
    top.first.wait_for(timeout=30_000)
    assert top.first.locator("td").nth(1).inner_text() == score
    assert re.search(r"\w+: \d+", top.first.locator(".contrib").inner_text())
    assert page.locator("#topriskrows tr").count() <= 5
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "overview-risk.png"), full_page=True)

    page.click("#tabs button[data-tab=risk]")
    row = page.locator("#riskrows tr", has=page.locator("td", has_text="payments")).first
    row.wait_for(timeout=30_000)
    cells = row.locator("td")
    assert cells.nth(0).inner_text() == "payments"
    assert cells.nth(1).inner_text() == "service"
    assert cells.nth(2).inner_text() == score
    contributions = cells.nth(3).inner_text()
    # What holds is that the shown contributions add up to the score.
    points = [float(v) for v in re.findall(r"\w+: (\d+(?:\.\d+)?)", contributions)]
    assert points and abs(sum(points) - int(score)) < 0.5 * len(points), contributions
    assert row.locator(".bar span").count() == len(points)  # one bar segment per factor
    subjects = page.locator("#riskrows tr td:first-child").all_inner_texts()
    assert {"payments", "repo:acme/payments", "cluster-nodes"} <= set(subjects)
    scores = page.locator("#riskrows tr td:nth-child(3)").all_inner_texts()
    numbers = [int(s) for s in scores if s.isdigit()]
    assert numbers == sorted(numbers, reverse=True), "highest score first"
    nodes = page.locator("#riskrows tr", has=page.locator("td", has_text="cluster-nodes"))
    # The risk stage stores the contributions of its last score; the bar shows them.
    assert re.search(r"incidents: \d+", nodes.first.inner_text())
    page.screenshot(path=str(SCREENSHOTS / "risk.png"), full_page=True)

    # A state that keeps its last contributions and scorecard shows them as they are.
    shown = page.evaluate(
        """() => {
          const st = {t: "risk", subject: "search", type: "service", items: {},
            emit: {score: 43, time: 0, contributions: [{factor: "incidents", points: 23},
              {factor: "findings", points: 17}, {factor: "ci", points: 3}]},
            last_scorecard: {decision: "warn", deployment: {key: "run:1"}}};
          renderRisk([{key: "search", value: st}]);
          const cells = [...document.querySelectorAll("#riskrows tr td")];
          return cells.map((td) => td.innerText);
        }"""
    )
    assert shown[:3] == ["search", "service", "43"]
    assert "incidents: 23 · findings: 17 · ci: 3" in shown[3]
    assert shown[5] == "warn"
    page.close()
