"""A real browser (Debian's Chromium driven by Playwright) signs in to the dashboard of a
running pipeline fed with fixtures, sees firing alerts and silences one from the page, and sees
the drifted resource of a Terraform plan on the compliance tab."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.settings import REPO_ROOT
from app.sources.files import file_records
from tables.control.audit import verify_chain
from tests.integration.test_web_api import READ, TOKENS, get, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ADMIN = TOKENS["VIGIL_ADMIN_TOKENS"]
SCREENSHOTS = Path(os.environ.get("VIGIL_SCREENSHOTS", REPO_ROOT / "var" / "screenshots"))


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing: run scripts/system-deps.sh")
        pytest.skip("Chromium is not installed (scripts/system-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def test_sign_in_see_alerts_and_silence_one(workers, fixtures_dir, browser):
    raws = [raw for _, raw in file_records(fixtures_dir / "falco/falco-0.31.1-host-alerts.jsonl")]
    workers.produce(workers.topic("raw:falco"), raws, key=b"falco.jsonl")
    plan = (fixtures_dir / "terraform/show-json-drift.json").read_bytes()  # drifted `ami`
    workers.produce(workers.topic("raw:terraform"), [plan], key=b"plan.json")
    worker = workers.start("web", **TOKENS)
    base = f"http://127.0.0.1:{worker.web_port}"

    def firing_alerts():
        try:
            status, body = get(f"{base}/api/tables/alerts?limit=500", READ)
        except OSError:
            return None
        if status != 200:
            return None
        firing = [r for r in body["items"] if r["value"].get("status") == "firing"]
        return firing or None

    wait_for(firing_alerts, 90)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(base + "/")
    page.fill("#token", ADMIN)
    page.click("#signin")
    page.wait_for_selector("#entities tr", timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    page.click("#tabs button[data-tab=alerts]")
    page.wait_for_selector("#alertgroups td.firing", timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / "alerts.png"), full_page=True)
    row = page.locator("#alertgroups tr", has=page.locator("button", has_text="Silence")).first
    alertname = row.locator("td").nth(1).inner_text()
    entity = row.locator("xpath=ancestor::div[contains(@class, 'group')]").get_attribute(
        "data-group"
    )
    entity = entity[: entity.index(":{")]
    row.locator("button", has_text="Silence").click()

    silenced_row = page.locator(
        "#alertgroups tr", has=page.locator("td", has_text=alertname)
    ).filter(has_text="silenced")
    silenced_row.first.wait_for(timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / "alerts-silenced.png"), full_page=True)

    status, body = get(f"{base}/api/silences", READ)
    assert status == 200
    # createdBy is the admin token's principal (app/web/auth.py), whatever the page sends
    (silence,) = [s for s in body["items"] if s["createdBy"] == "admin-token-1"]
    assert {"name": "alertname", "op": "=", "value": alertname} in silence["matchers"]
    assert {"name": "entity", "op": "=", "value": entity} in silence["matchers"]
    assert silence["state"] == "active"

    audit = wait_for(lambda: get(f"{base}/api/audit", READ)[1]["items"] or None, 30)
    assert audit[-1]["what"] == "silence.create" and audit[-1]["who"] == "admin-token-1"
    assert verify_chain(audit)[0]

    page.click("#tabs button[data-tab=audit]")
    page.locator("#auditrows tr", has_text="silence.create").first.wait_for(timeout=15_000)
    page.screenshot(path=str(SCREENSHOTS / "audit.png"), full_page=True)
    page.click("#tabs button[data-tab=compliance]")
    drifted = page.locator("#driftrows tr", has_text="tf:test_instance.should_refresh")
    drifted.first.wait_for(timeout=30_000)
    assert drifted.first.locator("td").nth(1).inner_text() == "ami"
    page.screenshot(path=str(SCREENSHOTS / "compliance.png"), full_page=True)

    page.click("#tabs button[data-tab=silences]")
    page.wait_for_selector("#silencerows tr", timeout=10_000)
    page.screenshot(path=str(SCREENSHOTS / "silences.png"), full_page=True)
    page.close()
