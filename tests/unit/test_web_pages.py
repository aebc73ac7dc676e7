"""The dashboard pages' APIs (app/web/pages.py, app/web/alerts_page.py) through aiohttp's test
client over faked tables: alerts grouped and filtered with Alertmanager matchers, what tells a
group's alerts apart, silences, paging, bad input answered 400; the chart APIs' shapes."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import quote

import pytest

import app.web.pages as pages
import app.web.snapshots as snapshots
from agents.history import HISTORY
from app.model.events import format_time
from app.model.outputs import Output
from app.web.alert_groups import (
    group_rows,
    page_groups,
    parse_filter,
    select_alerts,
    silence_matchers,
)
from app.web.history import History
from tests.unit.test_web import ALICE, CI, Web, call

NOW = int(time.time() * 1000)


def finding(cve: str, package: str, fixed: str, severity: str = "high") -> dict:
    labels = {
        "alertname": "Vulnerability",
        "entity": "image:registry.example.com/search",
        "source": "trivy",
        "artifact": "registry.example.com/search",
        "vulnerability_id": cve,
        "package": package,
    }
    return {
        "t": "alert",
        "fp": f"fp-{cve}",
        "entity": labels["entity"],
        "source": "trivy",
        "kind": "finding",
        "labels": labels,
        "annotations": {"fixed_version": fixed, "installed_version": "1.0", "title": cve},
        "group": 'image:registry.example.com/search:{alertname="Vulnerability"}',
        "status": "firing",
        "severity": severity,
        "count": 1,
        "last_seen": NOW,
    }


def falco(container: str, command: str, status: str = "firing") -> dict:
    labels = {
        "alertname": "Terminal shell in container",
        "entity": "host:node-d",
        "source": "falco",
    }
    return {
        "t": "alert",
        "fp": f"fp-{container}",
        "entity": "host:node-d",
        "source": "falco",
        "kind": "runtime",
        "labels": labels,
        "annotations": {"container_name": container, "command": command},
        "group": 'host:node-d:{alertname="Terminal shell in container"}',
        "status": status,
        "severity": "medium",
        "count": 2,
        "last_seen": NOW - 1000,
    }


ALERTS = {
    "a|1": finding("CVE-2021-44228", "log4j-core", "2.15.0", "critical"),
    "a|2": finding("CVE-2023-5363", "libcrypto3", "3.1.4-r0"),
    "b|1": falco("shell-1", "bash"),
    "b|2": falco("shell-2", "sh -i"),
    "b|3": falco("old", "zsh", status="resolved"),
    "a|~scope|x": {"t": "scope", "open": []},
}


@pytest.fixture
async def client(monkeypatch):
    from aiohttp.test_utils import TestClient, TestServer

    server = Web(monkeypatch)
    monkeypatch.setattr(snapshots, "alert_state", ALERTS)
    snapshots.forget()
    async with TestClient(TestServer(server.app)) as test_client:
        test_client.web = server
        yield test_client


def test_filter_syntax_is_alertmanagers():
    matchers = parse_filter('{severity="critical", alertname=~"Vuln.*", x!="a,b"}')
    assert [str(m) for m in matchers] == [
        'severity="critical"',
        'alertname=~"Vuln.*"',
        'x!="a,b"',
    ]
    assert parse_filter("") == () and parse_filter("  {} ") == ()
    for bad in ('alertname=~"("', "no operator", '1x="a"'):
        with pytest.raises(ValueError):
            parse_filter(bad)


def test_groups_tell_their_alerts_apart():
    rows = select_alerts(ALERTS.values(), (), "firing", [], NOW)
    groups = group_rows(rows)
    assert [g["entity"] for g in groups] == ["image:registry.example.com/search", "host:node-d"]
    vulns, shells = groups
    assert vulns["labels"]["alertname"] == "Vulnerability" and vulns["severity"] == "critical"
    first, second = vulns["alerts"]
    assert first["distinct"]["vulnerability_id"] == "CVE-2021-44228"
    assert first["distinct"]["package"] == "log4j-core"
    assert first["distinct"]["fixed_version"] == "2.15.0"
    assert second["distinct"]["vulnerability_id"] == "CVE-2023-5363"
    assert "alertname" not in first["distinct"] and "entity" not in first["distinct"]
    assert {a["distinct"]["container_name"] for a in shells["alerts"]} == {"shell-1", "shell-2"}
    assert shells["count"] == 2  # the resolved one is not firing


def test_silenced_groups_sort_last_and_state_filters():
    silence = {
        "matchers": [{"name": "entity", "op": "=", "value": "image:registry.example.com/search"}],
        "starts_ms": NOW - 1000,
        "ends_ms": NOW + 60_000,
    }
    rows = select_alerts(ALERTS.values(), (), "firing", [silence], NOW)
    groups = group_rows(rows)
    assert groups[-1]["silenced"] and groups[-1]["entity"] == "image:registry.example.com/search"
    assert not select_alerts(ALERTS.values(), (), "active", [silence], NOW)[0][1]
    assert len(select_alerts(ALERTS.values(), (), "silenced", [silence], NOW)) == 2
    assert len(select_alerts(ALERTS.values(), (), "resolved", [silence], NOW)) == 1
    assert len(select_alerts(ALERTS.values(), (), "all", [silence], NOW)) == 5


def test_silence_matchers_are_exact_and_bounded():
    matchers = silence_matchers({f"l{i:02d}": "v" for i in range(40)} | {"a": 'q"x'})
    assert len(matchers) == 32 and matchers[0] == 'a="q\\"x"'


async def test_alerts_api_groups_filters_pages(client):
    status, body = await call(client, "GET", "/api/alerts", token=CI)
    assert status == 200 and body["total"] == 2 and body["alerts"] == 4
    group = body["items"][0]
    assert 'entity="image:registry.example.com/search"' in group["silence"]
    assert all(a["silence"] for a in group["alerts"])
    status, body = await call(client, "GET", '/api/alerts?filter=severity="critical"', token=CI)
    assert status == 200 and body["alerts"] == 1 and body["filter"] == ['severity="critical"']
    query = "/api/alerts?filter=alertname%3D~%22Terminal.*%22&state=all"
    status, body = await call(client, "GET", query, token=CI)
    assert body["alerts"] == 3 and body["items"][0]["entity"] == "host:node-d"
    status, body = await call(client, "GET", "/api/alerts?limit=1&offset=1", token=CI)
    assert body["total"] == 2 and [g["entity"] for g in body["items"]] == ["host:node-d"]
    for bad in ('/api/alerts?filter=x=~"("', "/api/alerts?state=nope", "/api/alerts?limit=x"):
        status, body = await call(client, "GET", bad, token=CI)
        assert status == 400 and body["error"], bad


async def test_read_token_cannot_silence_from_the_page(client):
    status, body = await call(client, "GET", "/api/alerts", token=CI)
    matchers = body["items"][0]["silence"]
    start = format_time(NOW)
    silence = {"matchers": matchers, "comment": "page", "startsAt": start, "endsAt": start}
    status, answer = await call(client, "POST", "/api/silences", token=CI, json=silence)
    assert status == 403
    status, answer = await call(client, "POST", "/api/silences", token=ALICE, json=silence)
    assert status == 202 and answer["silence"]["createdBy"] == "alice"


async def test_chart_apis(client, monkeypatch):
    history = History()
    monkeypatch.setattr(pages, "HISTORY", history)
    monkeypatch.setattr(
        snapshots,
        "entity_stats",
        {"host:node-d": {"entity": "host:node-d", "events": 3}, "~wm": {}},
    )
    risk = {"payments": {"t": "risk", "type": "service", "emit": {"score": 40, "time": NOW}}}
    monkeypatch.setattr(snapshots, "risk_state", risk)
    snapshots.forget()
    drifted = {"ami": {"d": "ami-1", "o": "ami-2", "since": NOW}}
    monkeypatch.setattr(snapshots, "observed_state", {"tf:x": {"t": "drift", "drifted": drifted}})
    posture = {
        "t": "posture",
        "framework": "cis",
        "control": "5.2.1",
        "scope": "prod",
        "entity": "host:node-d",
        "rules": {"privileged": {"status": "fail", "last_violation": NOW}},
    }
    monkeypatch.setattr(snapshots, "posture_state", {"host:node-d|cis|5.2.1": posture, "~x": {}})
    monkeypatch.setattr(pages, "_assignment", lambda: [("t.events", 0)])
    history.count("falco", int(time.time() * 1000))
    series = "host:node-z|r|falco_alerts"
    window = {"series": series, "entity": "host:node-z", "kind": "rate", "name": "falco_alerts"}
    history.record(
        [
            Output("windows", series, {**window, "start_ms": NOW - 60_000, "value": 30.0}),
            Output(
                "anomalies",
                series,
                {
                    **window,
                    "window_start": NOW - 60_000,
                    "value": 30.0,
                    "time": "t",
                    "score": 1.0,
                    "expected": [0, 3],
                },
            ),
            Output(
                "risk",
                "payments",
                {
                    "entity": "payments",
                    "score": 40,
                    "time": NOW,
                    "contributions": [{"factor": "ci", "points": 40}],
                },
            ),
            Output(
                "drift",
                "tf:x",
                {
                    "resource": "tf:x",
                    "status": "drifted",
                    "actor": {"user": "bob"},
                    "out_of_band": True,
                },
            ),
        ],
        NOW,
    )
    status, body = await call(client, "GET", "/api/overview?minutes=15", token=CI)
    assert status == 200 and body["entities"] == 1 and body["firing"] == 4
    assert body["events"] == 3 and body["recent_entities"][0]["entity"] == "host:node-d"
    assert sum(body["rates"]["sources"]["falco"]) == 0.1 and len(body["rates"]["times"]) == 90
    assert body["top_alerts"][0]["severity"] == "critical"
    assert body["top_anomalies"][0]["series"] == series and body["drifted"] == 1
    status, body = await call(client, "GET", "/api/anomalies?kind=rate", token=CI)
    assert body["by_kind"] == {"metric": 0, "rate": 1}
    assert body["items"][0]["points"] == [[NOW - 60_000, 30.0, 0, 3, 1.0]]
    for entity, total in (("host:node-z", 1), ("host:elsewhere", 0)):
        status, body = await call(client, "GET", f"/api/anomalies?entity={entity}", token=CI)
        assert body["total"] == total
    status, body = await call(client, "GET", "/api/risk/history", token=CI)
    (subject,) = body["items"]
    assert subject["subject"] == "payments" and subject["points"][0][1:] == [40, {"ci": 40}]
    status, body = await call(client, "GET", "/api/drift", token=CI)
    (row,) = body["items"]
    assert row["paths"] == [{"path": "ami", "desired": "ami-1", "observed": "ami-2", "since": NOW}]
    assert row["actor"] == {"user": "bob"} and row["out_of_band"] is True
    status, body = await call(client, "GET", "/api/posture", token=CI)
    (row,) = body["items"]
    assert row["control"] == "5.2.1" and row["failing_entities"] == ["host:node-d"]
    status, body = await call(client, "GET", "/api/posture?local=1", token=CI)
    assert [r["key"] for r in body["rows"]] == ["host:node-d|cis|5.2.1"]
    status, body = await call(client, "GET", "/api/pipeline/workers", token=CI)
    (worker,) = body["workers"]
    assert worker["assignment"] == ["t.events:0"] and "lag" in worker and "overflow" in worker
    for bad in ("/api/overview?minutes=x", "/api/anomalies?kind=x", "/api/drift?offset=x"):
        status, _ = await call(client, "GET", bad, token=CI)
        assert status == 400, bad
    assert HISTORY is not history  # the worker's own history was left alone


def test_only_the_page_of_groups_is_built():
    selected = select_alerts(ALERTS.values(), (), "all", [], NOW)
    total, groups = page_groups(selected, 1)
    assert total == 2 and len(groups) == 1 and groups[0]["alerts"][0]["distinct"]


async def test_answers_are_shared_and_recomputed_off_the_request_path():
    """The first requests wait for one computation; a stale answer is still served while
    its recomputation runs in the background, then replaced."""
    calls: list[int] = []
    release = asyncio.Event()

    async def compute() -> int:
        calls.append(1)
        if len(calls) > 1:
            await release.wait()
        return len(calls)

    snapshots.forget()
    first = await asyncio.gather(*(snapshots.shared("x", compute) for _ in range(3)))
    assert first == [1, 1, 1] and len(calls) == 1
    assert await snapshots.shared("x", compute) == 1 and len(calls) == 1  # fresh: shared
    # Stale: answered at once with what is in hand; one recomputation starts.
    assert await snapshots.shared("x", compute, max_age_s=0) == 1
    assert await snapshots.shared("x", compute, max_age_s=0) == 1
    await asyncio.sleep(0)
    assert len(calls) == 2
    release.set()
    for _ in range(3):
        await asyncio.sleep(0)
    assert await snapshots.shared("x", compute) == 2
    snapshots.forget()


async def test_alert_groups_in_two_steps_between_workers(client):
    """A worker answers another with group summaries, then the page's groups in full."""
    status, body = await call(client, "GET", "/api/alerts?local=1", token=CI)
    assert status == 200 and body["total"] == 2
    assert all("alerts" not in g and g["worker"] for g in body["items"])
    keys = [g["group"] for g in body["items"]][::-1]
    query = "/api/alerts?local=1&groups=" + quote(json.dumps(keys))
    status, body = await call(client, "GET", query, token=CI)
    assert [g["group"] for g in body["items"]] == keys and body["items"][0]["alerts"]
    for bad in ("{", '"x"', json.dumps(["k"] * 600)):
        status, body = await call(
            client, "GET", "/api/alerts?local=1&groups=" + quote(bad), token=CI
        )
        assert status == 400, bad
