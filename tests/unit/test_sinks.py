"""Alert sinks (app/sinks/): Alertmanager and webhook payloads, settings, failure
classification, deterministic backoff, delivery through a local HTTP server with retries, the
retry-topic and dead-letter records, and URLs with tokens never reaching logs or records."""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.model.events import format_time, parse_time
from app.model.outputs import Origin
from app.settings.sinks import SinkSettings
from app.sinks import delivery
from app.sinks.alertmanager import (
    alert_labels,
    alertmanager_alert,
    alertmanager_payload,
    alerts_endpoint,
    label_name,
)
from app.sinks.delivery import (
    Backoff,
    DeliveryError,
    classify_exception,
    deliver,
    is_retryable_status,
    post_json,
    redact,
    safe_url,
)
from app.sinks.dispatch import RETRY_STREAM, SINK_FAILED, Dispatcher, WebhookSink
from app.sinks.text import explanation, factors_summary
from app.sinks.webhook import webhook_message

NOW = parse_time("2024-03-01T12:00:00Z")
TOKEN = "T0AAAAAAA/B0BBBBBBB/s3cr3tW3bh00kT0k3n"
PUBLIC = "https://vigil.example.com"


def alert_record(**overrides: Any) -> dict[str, Any]:
    """A `vigil.alerts` record as tables/alerts/stage.py writes it (Falco fixture, first alert)."""
    record = {
        "id": "a3e62a9f0426b1a3aa72cf7d",
        "fingerprint": "6db0d84f28925376",
        "group_key": 'host:node-a:{alertname="Launch Privileged Container"}',
        "dedup_key": "40e8307f5c70ccc9995bf50c942454dc88a1236c3f31ec4124f74cad51edbbd6",
        "kind": "runtime",
        "status": "firing",
        "notification": "firing",
        "count": 3,
        "first_seen": "2024-03-01T11:29:32.918Z",
        "last_seen": "2024-03-01T11:31:02.000Z",
        "starts_at": "2024-03-01T11:29:32.918Z",
        "ends_at": None,
        "resolved_by": None,
        "score": 67.5,
        "factors": {
            "severity": 0.75,
            "exploitability": 1.25,
            "asset_criticality": 1.0,
            "exposure": 1.0,
            "confidence": 0.9,
            "recency": 0.8,
            "service": "payments",
        },
        "labels": {
            "alertname": "Launch Privileged Container",
            "entity": "host:node-a",
            "source": "falco",
            "falco_source": "syscall",
            "image": "fedora",
        },
        "annotations": {
            "summary": "Privileged container started (image=fedora:latest) <b>&",
            "priority": "Critical",
            "tags": "cis,container",
        },
        "entity": "host:node-a",
        "source": "falco",
        "severity": "high",
        "time": "2024-03-01T11:32:02.918Z",
    }
    record.update(overrides)
    return record


def settings(**overrides: Any) -> SinkSettings:
    base = {"web_public_url": PUBLIC, "retry_backoff_ms": 100, "retry_max_backoff_ms": 10_000}
    base.update(overrides)
    return SinkSettings(**base)


class Clock:
    """A wall clock the test moves; `sleep` advances it instead of waiting."""

    def __init__(self, now: int = NOW) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += int(seconds * 1000)


class Scripted:
    """A local HTTP server answering each request with the next scripted status (then 200)."""

    def __init__(self, statuses: list[int] | Callable[[Any], int], body: str = "") -> None:
        self.statuses = statuses
        self.body = body
        self.requests: list[tuple[str, Any]] = []
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.requests.append((request.path_qs, payload))
        if callable(self.statuses):
            status = self.statuses(payload)
        else:
            status = self.statuses.pop(0) if self.statuses else 200
        headers = {"Retry-After": "1"} if status == 429 else {}
        return web.Response(status=status, text=self.body or f"status {status}", headers=headers)

    async def __aenter__(self) -> Scripted:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await self.server.close()

    def url(self, path: str) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}{path}"


def batch(*records: dict[str, Any]) -> list[tuple[bytes, Origin]]:
    return [(orjson.dumps(r), Origin("vigil.alerts", 2, 40 + i)) for i, r in enumerate(records)]


@pytest.fixture(autouse=True)
def _fresh_counts():
    delivery.COUNTS.clear()
    yield
    delivery.COUNTS.clear()


# ---- settings ---------------------------------------------------------------------------


def test_settings_default_to_no_sink():
    s = SinkSettings.from_env({})
    assert not s.enabled
    assert s.alertmanager_url is None and s.webhook_urls == ()
    assert s.web_public_url == "http://127.0.0.1:6066"
    assert (s.timeout_s, s.max_attempts, s.inline_attempts, s.retry_backoff_ms) == (5.0, 12, 3, 500)


def test_settings_from_env():
    s = SinkSettings.from_env(
        {
            "VIGIL_ALERTMANAGER_URL": "http://am:9093",
            "VIGIL_WEBHOOK_URLS": f" https://hooks.slack.com/services/{TOKEN} ,http://h2/x,",
            "VIGIL_SINK_TIMEOUT_S": "2.5",
            "VIGIL_SINK_MAX_ATTEMPTS": "2",
            "VIGIL_SINK_RETRY_BACKOFF_MS": "50",
            "WEB_HOST": "vigil-0.vigil",
            "WEB_PORT": "8080",
        }
    )
    assert s.enabled and s.alertmanager_url == "http://am:9093"
    assert s.webhook_urls == (f"https://hooks.slack.com/services/{TOKEN}", "http://h2/x")
    assert (s.timeout_s, s.max_attempts, s.retry_backoff_ms) == (2.5, 2, 50)
    assert s.inline_attempts == 2  # never more than max_attempts
    assert s.web_public_url == "http://vigil-0.vigil:8080"
    assert SinkSettings.from_env({"VIGIL_WEB_PUBLIC_URL": "https://v.example/"}).web_public_url == (
        "https://v.example"
    )


def test_settings_errors_never_show_the_url():
    with pytest.raises(ValueError) as info:
        SinkSettings.from_env({"VIGIL_WEBHOOK_URLS": f"hooks.slack.com/services/{TOKEN}"})
    assert TOKEN not in str(info.value) and "VIGIL_WEBHOOK_URLS" in str(info.value)
    with pytest.raises(ValueError, match="VIGIL_SINK_MAX_ATTEMPTS"):
        SinkSettings.from_env({"VIGIL_SINK_MAX_ATTEMPTS": "0"})


# ---- payloads ---------------------------------------------------------------------------


def test_alertmanager_alert_shape_for_a_firing_record():
    alert = alertmanager_alert(
        alert_record(), public_url=PUBLIC, now_ms=NOW, firing_ttl_ms=3_600_000
    )
    assert set(alert) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert alert["labels"] == {
        "alertname": "Launch Privileged Container",
        "entity": "host:node-a",
        "source": "falco",
        "falco_source": "syscall",
        "image": "fedora",
        "severity": "high",
        "vigil_kind": "runtime",
    }
    assert "vigil_score" not in alert["labels"]  # changes every notification: not identity
    notes = alert["annotations"]
    assert all(isinstance(v, str) for v in [*alert["labels"].values(), *notes.values()])
    assert notes["vigil_score"] == "67.5"
    assert notes["vigil_explanation"] == (
        "score 67.5/100 = 100 × severity 0.75 × exploitability 1.25 × asset criticality 1 × "
        "exposure 1 × confidence 0.9 × recency 0.8 (service payments)"
    )
    assert notes["vigil_factors"].startswith("severity=0.75 exploitability=1.25 ")
    assert notes["summary"].startswith("Privileged container started")
    assert notes["vigil_fingerprint"] == "6db0d84f28925376"
    assert notes["vigil_count"] == "3" and notes["vigil_notification"] == "firing"
    assert alert["startsAt"] == "2024-03-01T11:29:32.918Z"
    assert alert["endsAt"] == format_time(NOW + 3_600_000)  # delivery time + TTL
    assert alert["generatorURL"] == f"{PUBLIC}/?entity=host%3Anode-a&alert=6db0d84f28925376"


def test_alertmanager_alert_resolved_ends_when_vigil_resolved_it():
    resolved = alert_record(status="resolved", notification="resolved")
    resolved["ends_at"] = "2024-03-01T11:36:02.000Z"
    alert = alertmanager_alert(resolved, public_url=PUBLIC, now_ms=NOW, firing_ttl_ms=1)
    assert alert["endsAt"] == "2024-03-01T11:36:02.000Z"
    resolved["ends_at"] = None
    alert = alertmanager_alert(resolved, public_url=PUBLIC, now_ms=NOW, firing_ttl_ms=1)
    assert alert["endsAt"] == resolved["last_seen"]
    resolved["last_seen"] = None
    alert = alertmanager_alert(resolved, public_url=PUBLIC, now_ms=NOW, firing_ttl_ms=1)
    assert alert["endsAt"] == resolved["time"]
    # never before startsAt (Alertmanager rejects that)
    early = alert_record(status="resolved", ends_at="2024-03-01T10:00:00.000Z")
    alert = alertmanager_alert(early, public_url=PUBLIC, now_ms=NOW, firing_ttl_ms=1)
    assert alert["endsAt"] == alert["startsAt"]


def test_alertmanager_labels_are_valid_strings_and_keep_the_senders_own():
    record = alert_record(
        labels={
            "alertname": "HighLatency",
            "severity": "warning",
            "k8s.ns-name": "prod",
            "9lives": 9,
            "flag": True,
            "empty": "",
            "none": None,
        }
    )
    labels = alert_labels(record)
    assert labels["severity"] == "warning"  # the sender's label wins over Vigil's severity
    assert labels["k8s_ns_name"] == "prod" and labels["_9lives"] == "9" and labels["flag"] == "true"
    assert "empty" not in labels and "none" not in labels
    assert labels["entity"] == "host:node-a" and labels["source"] == "falco"
    assert label_name("a.b/c") == "a_b_c"
    assert alert_labels({"kind": "ci", "entity": "repo:x"})["alertname"] == "Vigil ci"


def test_alertmanager_payload_and_endpoint():
    payload = alertmanager_payload(
        [alert_record(), alert_record(id="b")], public_url=PUBLIC, now_ms=NOW, firing_ttl_ms=1
    )
    assert isinstance(payload, list) and len(payload) == 2
    assert alerts_endpoint("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert alerts_endpoint("http://am:9093/") == "http://am:9093/api/v2/alerts"
    assert alerts_endpoint("http://am/prefix/api/v2/alerts") == "http://am/prefix/api/v2/alerts"


def test_webhook_message_is_slack_compatible_and_carries_the_record():
    record = alert_record()
    message = webhook_message(record, public_url=PUBLIC)
    assert message["text"] == (
        "[FIRING] Launch Privileged Container on host:node-a (severity high, score 67.5)"
    )
    (attachment,) = message["attachments"]
    assert attachment["color"] == "#d00000"
    assert attachment["title_link"].startswith(f"{PUBLIC}/?entity=host%3Anode-a")
    assert "&lt;b&gt;&amp;" in attachment["text"]  # Slack markup escaped
    assert "score 67.5/100 = 100 × severity 0.75" in attachment["text"]
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["Entity"] == "host:node-a" and fields["Score"] == "67.5"
    assert message["vigil"] == record
    resolved = webhook_message(
        alert_record(status="resolved", notification="resolved"), public_url=PUBLIC
    )
    assert resolved["text"].startswith("[RESOLVED]")
    assert resolved["attachments"][0]["color"] == "#2eb886"
    orjson.dumps(message)  # JSON all the way


def test_explanation_without_factors_and_with_cap():
    assert explanation({"score": None}) == "no score"
    assert explanation({"score": 100.0, "factors": {"severity": 1}}).endswith("(capped at 100)")
    assert factors_summary({"b": 1, "severity": 0.5}) == "severity=0.5 b=1"


# ---- classification and backoff ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (504, True), (429, True), (408, True),
     (400, False), (401, False), (403, False), (404, False), (410, False), (422, False),
     (301, False), (302, False)],
)  # fmt: skip
def test_status_classification(status, retryable):
    assert is_retryable_status(status) is retryable


def test_exception_classification():
    conn_key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, None, None, None, None)
    assert classify_exception(aiohttp.ClientConnectorError(conn_key, OSError(111, "refused")))
    assert classify_exception(aiohttp.ServerDisconnectedError())
    assert classify_exception(TimeoutError())
    assert classify_exception(aiohttp.ClientPayloadError("cut"))
    assert not classify_exception(aiohttp.InvalidURL("nope"))
    assert not classify_exception(ValueError("bad"))


def test_backoff_schedule_is_exponential_capped_and_deterministic():
    backoff = Backoff(base_ms=500, max_ms=8_000)
    schedule = [backoff.delay_ms(n, "webhook:abc|id-1") for n in range(1, 8)]
    assert schedule == [backoff.delay_ms(n, "webhook:abc|id-1") for n in range(1, 8)]
    for n, delay in enumerate(schedule, start=1):
        ceiling = min(8_000, 500 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert schedule[-1] <= 8_000 and schedule[-2] >= 4_000  # capped
    # jitter differs between records (no thundering herd) but not between runs
    others = [Backoff(500, 8_000).delay_ms(3, f"webhook:abc|id-{i}") for i in range(20)]
    assert len(set(others)) > 10
    assert backoff.delay_ms(1, "k", retry_after_s=3) == 3_000
    assert backoff.delay_ms(1, "k", retry_after_s=3600) == 8_000


# ---- delivery through a local server ----------------------------------------------------


async def test_post_json_and_errors():
    async with Scripted([200, 503, 400, 429]) as server, aiohttp.ClientSession() as session:
        url = server.url("/hook")
        assert await post_json(session, url, {"a": 1}, 2) == 200
        with pytest.raises(DeliveryError) as info:
            await post_json(session, url, {}, 2)
        assert info.value.retryable and info.value.status == 503
        with pytest.raises(DeliveryError) as info:
            await post_json(session, url, {}, 2)
        assert not info.value.retryable and info.value.status == 400
        with pytest.raises(DeliveryError) as info:
            await post_json(session, url, {}, 2)
        assert info.value.retryable and info.value.retry_after_s == 1.0
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DeliveryError) as info:
            await post_json(session, f"http://127.0.0.1:{port}/x", {}, 2)
        assert info.value.retryable and info.value.status is None


async def test_fails_twice_with_503_then_delivered_once():
    clock = Clock()
    async with Scripted([503, 503]) as server, aiohttp.ClientSession() as session:
        backoff = Backoff(100, 10_000)
        result = await deliver(
            session,
            server.url("/hook"),
            {"x": 1},
            attempts=3,
            timeout_s=2,
            backoff=backoff,
            key="k",
            sleep=clock.sleep,
        )
        assert result.ok and result.attempts == 3
        assert len(server.requests) == 3
        assert clock.sleeps == [backoff.delay_ms(1, "k") / 1000, backoff.delay_ms(2, "k") / 1000]

    clock = Clock()
    async with Scripted([503, 503]) as server, aiohttp.ClientSession() as session:
        hook = server.url("/hook")
        dispatcher = Dispatcher(settings(webhook_urls=(hook,)), clock=clock, sleep=clock.sleep)
        outputs = await dispatcher.deliver_batch(session, batch(alert_record()))
        assert outputs == []
        delivered = [p for _, p in server.requests]
        assert len(delivered) == 3 and delivered[-1]["vigil"]["id"] == alert_record()["id"]
        name = WebhookSink(hook, PUBLIC).name
        assert delivery.COUNTS[(name, "delivered")] == 1
        assert delivery.COUNTS[(name, "attempt_failed")] == 2


async def test_permanent_failure_goes_to_the_dead_letter_topic():
    clock = Clock()
    async with Scripted([400]) as server, aiohttp.ClientSession() as session:
        hook = server.url("/hook")
        dispatcher = Dispatcher(settings(webhook_urls=(hook,)), clock=clock, sleep=clock.sleep)
        record = alert_record()
        (out,) = await dispatcher.deliver_batch(session, batch(record))
        assert len(server.requests) == 1  # no retry of a 400
    assert out.topic == "deadletter" and out.key == "vigil.alerts:2:40"
    dead = out.value
    assert {
        "id", "source_topic", "partition", "offset", "error_code", "message", "raw_b64",
        "raw_bytes", "raw_truncated", "raw_sha256", "time",
    } <= set(dead)  # fmt: skip
    assert dead["error_code"] == SINK_FAILED
    assert (dead["source_topic"], dead["partition"], dead["offset"]) == ("vigil.alerts", 2, 40)
    assert orjson.loads(base64.b64decode(dead["raw_b64"])) == record  # replayable
    assert dead["attempts"] == 1 and dead["last_status"] == 400
    assert dead["sink"] == WebhookSink(hook, PUBLIC).name
    assert dead["alert_id"] == record["id"] and dead["fingerprint"] == record["fingerprint"]
    assert "HTTP 400" in dead["message"] and "refused" in dead["message"]
    assert dead["time"] == format_time(NOW)
    assert delivery.COUNTS[(dead["sink"], "dead_lettered")] == 1


async def test_alertmanager_batch_refused_is_resent_one_by_one():
    """Alertmanager refuses a whole batch for one invalid alert: only that one is dead."""

    def status(payload: list[dict]) -> int:
        return 400 if any(a["labels"].get("image") == "bad" for a in payload) else 200

    clock = Clock()
    async with Scripted(status) as server, aiohttp.ClientSession() as session:
        dispatcher = Dispatcher(
            settings(alertmanager_url=server.url("/")), clock=clock, sleep=clock.sleep
        )
        good = alert_record()
        bad = alert_record(id="bad-1", labels={**good["labels"], "image": "bad"})
        outputs = await dispatcher.deliver_batch(session, batch(good, bad, alert_record(id="c")))
        assert [path for path, _ in server.requests] == ["/api/v2/alerts"] * 4
        assert [len(p) for _, p in server.requests] == [3, 1, 1, 1]
    assert [o.value["alert_id"] for o in outputs] == ["bad-1"]
    assert outputs[0].value["sink"] == "alertmanager"


async def test_retryable_failure_goes_to_the_retry_topic_then_is_retried():
    clock = Clock()
    async with Scripted([503, 503, 503]) as server, aiohttp.ClientSession() as session:
        hook = server.url("/hook")
        config = settings(webhook_urls=(hook,), inline_attempts=2, max_attempts=4)
        dispatcher = Dispatcher(config, clock=clock, sleep=clock.sleep)
        record = alert_record()
        (out,) = await dispatcher.deliver_batch(session, batch(record))
        sink = WebhookSink(hook, PUBLIC)
        assert out.topic == RETRY_STREAM and out.key == record["fingerprint"]
        retry = out.value
        assert retry["sink"] == sink.name and retry["attempts"] == 2 and retry["max_attempts"] == 4
        assert retry["record"] == record and retry["last_status"] == 503
        assert retry["origin"] == {"topic": "vigil.alerts", "partition": 2, "offset": 40}
        expected_due = clock.now + dispatcher.backoff.delay_ms(2, f"{sink.name}|{record['id']}")
        assert retry["next_attempt_ms"] == expected_due
        assert retry["next_attempt_at"] == format_time(expected_due)

        # The retry agent's turn: waits (bounded) until due, one attempt, 503 again -> re-queued.
        clock.sleeps.clear()
        raw = orjson.dumps(retry)
        (again,) = await dispatcher.retry(session, raw, Origin("vigil.alerts-retry", 2, 7))
        assert clock.sleeps and clock.now >= expected_due
        assert again.topic == RETRY_STREAM and again.value["attempts"] == 3
        assert again.value["first_failed_at"] == retry["first_failed_at"]
        assert again.value["next_attempt_ms"] > retry["next_attempt_ms"]
        # Next try succeeds (the script ran out of 503s): nothing more to send.
        assert await dispatcher.retry(session, orjson.dumps(again.value), Origin("r", 2, 8)) == []
        assert len(server.requests) == 4
        assert delivery.COUNTS[(sink.name, "retried")] == 1


async def test_retry_gives_up_after_max_attempts():
    clock = Clock()
    async with Scripted(lambda payload: 503) as server, aiohttp.ClientSession() as session:
        hook = f"{server.url('/services/')}{TOKEN}"
        config = settings(webhook_urls=(hook,), inline_attempts=1, max_attempts=3)
        dispatcher = Dispatcher(config, clock=clock, sleep=clock.sleep)
        (out,) = await dispatcher.deliver_batch(session, batch(alert_record()))
        attempts_seen = [out.value["attempts"]]
        while out.topic == RETRY_STREAM:
            (out,) = await dispatcher.retry(session, orjson.dumps(out.value), Origin("r", 0, 0))
            attempts_seen.append(out.value["attempts"])
        assert attempts_seen == [1, 2, 3]
        assert len(server.requests) == 3
    assert out.topic == "deadletter" and out.value["error_code"] == SINK_FAILED
    assert "gave up after 3 attempt(s)" in out.value["message"]


async def test_retry_not_due_within_max_wait_is_requeued_unchanged():
    clock = Clock()
    dispatcher = Dispatcher(
        settings(webhook_urls=("http://127.0.0.1:9/h",), retry_max_wait_s=5),
        clock=clock,
        sleep=clock.sleep,
    )
    sink = next(iter(dispatcher.sinks.values()))
    value = {
        "sink": sink.name,
        "attempts": 1,
        "next_attempt_ms": NOW + 60_000,
        "record": alert_record(),
        "origin": {"topic": "vigil.alerts", "partition": 0, "offset": 1},
    }
    async with aiohttp.ClientSession() as session:
        (out,) = await dispatcher.retry(session, orjson.dumps(value), Origin("r", 0, 0))
    assert clock.sleeps == [5]  # bounded
    assert out.topic == RETRY_STREAM and out.value == value


async def test_retry_of_an_older_record_is_superseded_by_a_newer_delivery():
    clock = Clock()
    async with Scripted([]) as server, aiohttp.ClientSession() as session:
        hook = server.url("/hook")
        dispatcher = Dispatcher(settings(webhook_urls=(hook,)), clock=clock, sleep=clock.sleep)
        resolved = alert_record(id="r", status="resolved", time="2024-03-01T11:40:00.000Z")
        assert await dispatcher.deliver_batch(session, batch(resolved)) == []
        stale = {
            "sink": WebhookSink(hook, PUBLIC).name,
            "attempts": 1,
            "next_attempt_ms": NOW,
            "record": alert_record(),  # the firing that failed earlier
            "origin": {},
        }
        assert await dispatcher.retry(session, orjson.dumps(stale), Origin("r", 0, 0)) == []
        assert len(server.requests) == 1  # the stale firing was not sent after its resolution
        assert delivery.COUNTS[(stale["sink"], "superseded")] == 1


async def test_open_sink_defers_without_waiting_and_unknown_sink_is_dead_lettered():
    clock = Clock()
    async with Scripted(lambda payload: 503) as server, aiohttp.ClientSession() as session:
        hook = server.url("/hook")
        dispatcher = Dispatcher(settings(webhook_urls=(hook,)), clock=clock, sleep=clock.sleep)
        await dispatcher.deliver_batch(session, batch(alert_record()))
        assert len(server.requests) == 3
        outputs = await dispatcher.deliver_batch(session, batch(alert_record(id="next")))
        assert len(server.requests) == 3  # breaker open: straight to the retry topic
        (deferred,) = outputs
        assert deferred.topic == RETRY_STREAM and deferred.value["attempts"] == 0
        gone = dict(deferred.value, sink="webhook:000000000000")
        (dead,) = await dispatcher.retry(session, orjson.dumps(gone), Origin("r", 0, 0))
    assert dead.topic == "deadletter" and "no longer configured" in dead.value["message"]


async def test_unreadable_records_are_dead_lettered():
    dispatcher = Dispatcher(settings(webhook_urls=("http://127.0.0.1:9/h",)))
    async with aiohttp.ClientSession() as session:
        outputs = await dispatcher.deliver_batch(
            session, [(b"{not json", Origin("vigil.alerts", 0, 1)), (b"[1]", Origin("a", 0, 2))]
        )
        (bad_retry,) = await dispatcher.retry(session, b"{}", Origin("vigil.alerts-retry", 1, 3))
    assert [o.value["error_code"] for o in outputs] == ["malformed_json", "wrong_type"]
    assert bad_retry.value["error_code"] == "malformed_json"
    assert bad_retry.value["source_topic"] == "vigil.alerts-retry"


# ---- secrets ----------------------------------------------------------------------------


def test_safe_url_and_redact():
    url = f"https://user:pw@hooks.slack.com:8443/services/{TOKEN}?token=abc"
    assert safe_url(url) == "https://hooks.slack.com:8443"
    text = redact(f"failed {url} and path /services/{TOKEN} Bearer abcdefghijkl", [url])
    assert TOKEN not in text and "pw" not in text and "abcdefghijkl" not in text


async def test_a_webhook_token_is_never_logged_or_written(caplog):
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    echo = f"no such hook: /services/{TOKEN}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/services/{TOKEN}"

    def status(payload: dict) -> int:
        return 400 if payload["vigil"]["id"] == "refused" else 503

    async with Scripted(status, body=echo) as server:
        hook = server.url(f"/services/{TOKEN}")
        refusing = server.url(f"/reject/{TOKEN}?token=qs{TOKEN}")
        config = settings(webhook_urls=(hook, refusing, closed), inline_attempts=2, max_attempts=3)
        dispatcher = Dispatcher(config, clock=clock, sleep=clock.sleep)
        async with aiohttp.ClientSession() as session:
            outputs = await dispatcher.deliver_batch(
                session, batch(alert_record(), alert_record(id="refused"))
            )
            for out in list(outputs):
                if out.topic == RETRY_STREAM:
                    raw = orjson.dumps(out.value)
                    outputs += await dispatcher.retry(session, raw, Origin("r", 0, 0))
    assert {o.topic for o in outputs} == {RETRY_STREAM, "deadletter"}
    written = orjson.dumps([o.value for o in outputs]).decode()
    assert TOKEN not in written
    assert "127.0.0.1" in written  # the host is kept: enough to tell sinks apart
    # everything logged on the sending side (the test server's own access log aside)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert "dead-lettered" in logged and "deferred" in logged
    assert TOKEN not in logged and "s3cr3t" not in logged
    assert "webhook(http://127.0.0.1:" in logged
