"""Deliver alert records to every configured sink without stalling or losing any.

The alerts agent hands each batch to `Dispatcher.deliver_batch`: every sink gets the batch
(Alertmanager in one request, webhooks one request per record) with a few in-line attempts.
What a sink still refuses becomes an output record instead of an exception:

- retryable failure (network, timeout, 5xx, 429): a retry record on `vigil.alerts-retry`
  (`retry_value`) with the sink, attempts so far, next attempt time and last error. The retry
  agent feeds them to `Dispatcher.retry`, which waits (bounded) until the record is due, makes
  one attempt and re-queues it with a longer backoff, until `max_attempts`;
- permanent failure (other 4xx), or out of attempts: a dead letter (`sink_failed`) on
  `vigil.deadletter`, same shape as app/dead_letters.py's, holding the alert record as raw bytes
  so it can be replayed onto `vigil.alerts` once the sink is fixed.

A sink that just failed retryably is "open" (a circuit breaker) until its backoff has passed:
meanwhile the alerts agent defers that sink's records straight to the retry topic instead of
waiting on timeouts, so a dead sink costs the main flow one topic write per record. The retry
agent's next success closes it.

Order: a retried record may reach a sink after a newer record for the same alert (a firing
after its resolution would re-open it in Alertmanager). The dispatcher remembers, per sink and
fingerprint, the notification time of the newest record delivered, and skips older retries
(`superseded`). That memory is per process and bounded; after a restart a stale firing can
still arrive late, and Alertmanager then resolves it at its `endsAt`.

Faust-free: the agents pass a ClientSession and send the returned outputs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from app.dead_letters import DEADLETTER_RAW_CAP, dead_letter
from app.model.events import event_id, format_time, parse_time
from app.model.outputs import Origin, Output
from app.settings.sinks import SinkSettings
from app.sinks.alertmanager import alertmanager_payload, alerts_endpoint
from app.sinks.delivery import Backoff, DeliveryError, count, deliver, redact, safe_url
from app.sinks.webhook import webhook_message
from app.sources.errors import ErrorCode, NormalizeError

log = logging.getLogger("vigil.sinks")

#: Logical topic of retry records (ask for "alerts-retry" in app/topics.py OUTPUT_STREAMS).
RETRY_STREAM = "alerts-retry"
#: The dead-letter `error_code` of an alert no sink attempt could deliver.
SINK_FAILED = "sink_failed"
#: Most (sink, fingerprint) pairs remembered for ordering.
LEDGER_SIZE = 100_000


def wall_ms() -> int:
    """The wall clock in epoch ms (delivery runs in wall time, not event time)."""
    return int(time.time() * 1000)


class Sink:
    """One destination: a stable `name` (for retry records), a loggable `label`, its URL."""

    name: str
    label: str
    url: str
    #: Whether a refused multi-record request is worth resending record by record (to find
    #: the refused one); only for idempotent sinks.
    splittable = False

    def requests(
        self, records: Sequence[dict[str, Any]], now_ms: int
    ) -> list[tuple[list[int], Any]]:
        """The payloads for `records`, each with the indices of the records it carries."""
        raise NotImplementedError


class AlertmanagerSink(Sink):
    """Alertmanager API v2: one POST per batch; posting an alert again only updates it."""

    splittable = True

    def __init__(self, base_url: str, public_url: str, firing_ttl_ms: int) -> None:
        self.name = "alertmanager"
        self.url = alerts_endpoint(base_url)
        self.label = f"alertmanager({safe_url(base_url)})"
        self.public_url = public_url
        self.firing_ttl_ms = firing_ttl_ms

    def requests(
        self, records: Sequence[dict[str, Any]], now_ms: int
    ) -> list[tuple[list[int], Any]]:
        payload = alertmanager_payload(
            records, public_url=self.public_url, now_ms=now_ms, firing_ttl_ms=self.firing_ttl_ms
        )
        return [(list(range(len(records))), payload)] if records else []


class WebhookSink(Sink):
    """A Slack-compatible incoming webhook: one message per record."""

    def __init__(self, url: str, public_url: str) -> None:
        # Named by a hash of the URL: stable across restarts, and no token in retry records.
        self.name = "webhook:" + hashlib.sha256(url.encode()).hexdigest()[:12]
        self.url = url
        self.label = f"webhook({safe_url(url)})"
        self.public_url = public_url

    def requests(
        self, records: Sequence[dict[str, Any]], now_ms: int
    ) -> list[tuple[list[int], Any]]:
        return [
            ([i], webhook_message(r, public_url=self.public_url)) for i, r in enumerate(records)
        ]


def build_sinks(settings: SinkSettings) -> dict[str, Sink]:
    """Every configured sink by name."""
    sinks: list[Sink] = []
    if settings.alertmanager_url:
        sinks.append(
            AlertmanagerSink(
                settings.alertmanager_url,
                settings.web_public_url,
                settings.alertmanager_firing_ttl_s * 1000,
            )
        )
    sinks.extend(WebhookSink(url, settings.web_public_url) for url in settings.webhook_urls)
    return {s.name: s for s in sinks}


@dataclass(frozen=True, slots=True)
class AlertItem:
    """One decoded alert record and where it was read."""

    record: dict[str, Any]
    origin: Origin


def _origin_dict(origin: Origin) -> dict[str, Any]:
    return {"topic": origin.topic, "partition": origin.partition, "offset": origin.offset}


def _record_time(record: dict[str, Any]) -> int | None:
    try:
        return parse_time(record["time"])
    except (KeyError, TypeError, ValueError):
        return None


def _alert_key(record: dict[str, Any]) -> str | None:
    key = record.get("fingerprint") or record.get("id")
    return str(key) if key is not None else None


def retry_value(
    sink: Sink,
    item: AlertItem,
    attempts: int,
    max_attempts: int,
    due_ms: int,
    error: DeliveryError,
    now_ms: int,
    first_failed_at: str | None = None,
) -> Output:
    """The `vigil.alerts-retry` record for one alert a sink has not taken yet (key: the
    alert's fingerprint, so it stays co-partitioned with `vigil.alerts`)."""
    record = item.record
    value = {
        "id": event_id("alert-retry", sink.name, record.get("id"), attempts, due_ms),
        "sink": sink.name,
        "sink_host": sink.label,
        "attempts": attempts,
        "max_attempts": max_attempts,
        "next_attempt_ms": due_ms,
        "next_attempt_at": format_time(due_ms),
        "last_error": error.message,
        "last_status": error.status,
        "first_failed_at": first_failed_at or format_time(now_ms),
        "updated_at": format_time(now_ms),
        "origin": _origin_dict(item.origin),
        "record": record,
    }
    return Output(RETRY_STREAM, _alert_key(record), value)


def sink_dead_letter(
    sink_name: str,
    sink_label: str,
    item: AlertItem,
    attempts: int,
    error: DeliveryError,
    now_ms: int,
) -> Output:
    """The `vigil.deadletter` record (error_code `sink_failed`) for an alert a sink never took.

    Same fields as app/dead_letters.py's dead letters (`raw_b64` holds the alert record, ready to
    be produced to `vigil.alerts` again), plus `sink`, `sink_host`, `attempts`, `last_status`,
    `alert_id` and `fingerprint`. `time` is when Vigil gave up (wall clock).
    """
    raw = orjson.dumps(item.record)
    kept = raw[:DEADLETTER_RAW_CAP]
    origin = item.origin
    why = "refused" if not error.retryable else f"gave up after {attempts} attempt(s)"
    value = {
        "id": event_id("deadletter", origin.topic, origin.partition, origin.offset, raw, sink_name),
        "source_topic": origin.topic,
        "partition": origin.partition,
        "offset": origin.offset,
        "error_code": SINK_FAILED,
        "message": f"{sink_label} {why}: {error.message}"[:500],
        "raw_b64": base64.b64encode(kept).decode("ascii"),
        "raw_bytes": len(raw),
        "raw_truncated": len(kept) < len(raw),
        "raw_sha256": hashlib.sha256(raw).hexdigest(),
        "time": format_time(now_ms),
        "sink": sink_name,
        "sink_host": sink_label,
        "attempts": attempts,
        "last_status": error.status,
        "alert_id": item.record.get("id"),
        "fingerprint": item.record.get("fingerprint"),
    }
    return Output("deadletter", f"{origin.topic}:{origin.partition}:{origin.offset}", value)


class Dispatcher:
    """Delivers alert batches and retry records; see the module docstring."""

    def __init__(
        self,
        settings: SinkSettings,
        sinks: dict[str, Sink] | None = None,
        *,
        clock: Callable[[], int] = wall_ms,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.sinks = build_sinks(settings) if sinks is None else sinks
        self.backoff = Backoff(settings.retry_backoff_ms, settings.retry_max_backoff_ms)
        self.clock = clock
        self.sleep = sleep
        #: The longest in-line sleep of the normal schedule; a longer Retry-After defers.
        self.inline_max_sleep_s = (
            min(
                settings.retry_max_backoff_ms,
                settings.retry_backoff_ms * 2 ** max(0, settings.inline_attempts - 1),
            )
            / 1000
        )
        self._open_until: dict[str, int] = {}
        self._open_error: dict[str, DeliveryError] = {}
        self._delivered: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._urls = [s.url for s in self.sinks.values()]

    # ---- alerts agent ----------------------------------------------------------------

    def decode(self, raw: bytes | None, origin: Origin) -> AlertItem | Output:
        """An alert record from the alerts topic, or the dead letter for an unreadable one."""
        try:
            record = orjson.loads(raw or b"")
        except orjson.JSONDecodeError as exc:
            error = NormalizeError(ErrorCode.MALFORMED_JSON, f"alert record: {exc}"[:300])
            return dead_letter(origin, error, raw or b"")
        if not isinstance(record, dict) or not isinstance(record.get("labels", {}), dict):
            error = NormalizeError(
                ErrorCode.WRONG_TYPE, "alert record is not an object with labels"
            )
            return dead_letter(origin, error, raw or b"")
        return AlertItem(record, origin)

    async def deliver_batch(
        self, session: aiohttp.ClientSession, batch: Sequence[tuple[bytes | None, Origin]]
    ) -> list[Output]:
        """Deliver one batch of raw alert records to every sink (concurrently); return the
        retry records and dead letters to send before the batch is acknowledged."""
        outputs: list[Output] = []
        items: list[AlertItem] = []
        for raw, origin in batch:
            decoded = self.decode(raw, origin)
            if isinstance(decoded, Output):
                outputs.append(decoded)
            else:
                items.append(decoded)
        if items and self.sinks:
            per_sink = await asyncio.gather(
                *(self._to_sink(session, sink, items) for sink in self.sinks.values())
            )
            for sink_outputs in per_sink:
                outputs.extend(sink_outputs)
        return outputs

    async def _to_sink(
        self, session: aiohttp.ClientSession, sink: Sink, items: list[AlertItem]
    ) -> list[Output]:
        outputs: list[Output] = []
        records = [item.record for item in items]
        for indices, payload in sink.requests(records, self.clock()):
            outputs.extend(await self._send(session, sink, [items[i] for i in indices], payload))
        return outputs

    async def _send(
        self, session: aiohttp.ClientSession, sink: Sink, items: list[AlertItem], payload: Any
    ) -> list[Output]:
        now = self.clock()
        if self._is_open(sink.name, now):
            count(sink.name, "deferred", len(items))
            due = self._open_until[sink.name]
            error = self._open_error[sink.name]
            log.debug("%s unavailable: %d alert(s) deferred", sink.label, len(items))
            return [
                retry_value(sink, it, 0, self.settings.max_attempts, due, error, now)
                for it in items
            ]
        result = await deliver(
            session,
            sink.url,
            payload,
            attempts=self.settings.inline_attempts,
            timeout_s=self.settings.timeout_s,
            backoff=self.backoff,
            key=f"{sink.name}|{items[0].record.get('id')}",
            max_sleep_s=self.inline_max_sleep_s,
            sleep=self.sleep,
        )
        if result.ok:
            count(sink.name, "attempt_failed", result.attempts - 1)
            self._mark_delivered(sink.name, items)
            return []
        count(sink.name, "attempt_failed", result.attempts)
        error = result.error or DeliveryError("unknown failure", retryable=True)
        now = self.clock()
        if error.retryable:
            self._open(sink.name, now, result.attempts, error)
            if result.attempts < self.settings.max_attempts:
                count(sink.name, "deferred", len(items))
                log.warning(
                    "%s: %d alert(s) deferred to the retry topic after %d attempt(s): %s",
                    sink.label,
                    len(items),
                    result.attempts,
                    error.message,
                )
                return [
                    retry_value(
                        sink,
                        it,
                        result.attempts,
                        self.settings.max_attempts,
                        now
                        + self.backoff.delay_ms(
                            result.attempts,
                            f"{sink.name}|{it.record.get('id')}",
                            error.retry_after_s,
                        ),
                        error,
                        now,
                    )
                    for it in items
                ]
        elif len(items) > 1 and sink.splittable:
            # One refused alert fails the whole batch: resend one by one to find it.
            outputs: list[Output] = []
            for item in items:
                (_, single), *_ = sink.requests([item.record], now)
                outputs.extend(await self._send(session, sink, [item], single))
            return outputs
        return self._give_up(sink.name, sink.label, items, result.attempts, error, now)

    # ---- retry agent -----------------------------------------------------------------

    async def retry(
        self, session: aiohttp.ClientSession, raw: bytes | None, origin: Origin
    ) -> list[Output]:
        """Handle one retry record: wait (at most `retry_max_wait_s`) until it is due, then
        one attempt; returns the re-queued retry record or dead letter, if any."""
        try:
            value = orjson.loads(raw or b"")
            sink_name = str(value["sink"])
            record = value["record"]
            attempts = int(value["attempts"])
            due = int(value["next_attempt_ms"])
            source = value.get("origin") or {}
            item = AlertItem(
                record,
                Origin(source.get("topic") or "", source.get("partition"), source.get("offset")),
            )
            if not isinstance(record, dict):
                raise TypeError("record is not an object")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            error = NormalizeError(ErrorCode.MALFORMED_JSON, f"retry record: {exc!r}"[:300])
            return [dead_letter(origin, error, raw or b"")]
        sink = self.sinks.get(sink_name)
        now = self.clock()
        if sink is None:
            error = DeliveryError("sink no longer configured", retryable=False)
            label = str(value.get("sink_host") or sink_name)
            return self._give_up(sink_name, label, [item], attempts, error, now)
        if self._superseded(sink.name, record):
            count(sink.name, "superseded")
            log.info(
                "%s: skipped a retry of alert %s: a newer notification was delivered",
                sink.label,
                record.get("id"),
            )
            return []
        if due > now:
            await self.sleep(min((due - now) / 1000, self.settings.retry_max_wait_s))
            now = self.clock()
            if due > now:
                return [Output(RETRY_STREAM, _alert_key(record), value)]
        (_, payload), *_ = sink.requests([record], now)
        result = await deliver(
            session,
            sink.url,
            payload,
            attempts=1,
            timeout_s=self.settings.timeout_s,
            backoff=self.backoff,
            key=f"{sink.name}|{record.get('id')}",
            sleep=self.sleep,
        )
        attempts += result.attempts
        now = self.clock()
        if result.ok:
            count(sink.name, "retried")
            self._mark_delivered(sink.name, [item])
            self._open_until.pop(sink.name, None)
            log.info(
                "%s: delivered alert %s from the retry topic (attempt %d)",
                sink.label,
                record.get("id"),
                attempts,
            )
            return []
        count(sink.name, "attempt_failed")
        error = result.error or DeliveryError("unknown failure", retryable=True)
        if error.retryable and attempts < self.settings.max_attempts:
            self._open(sink.name, now, attempts, error)
            key = f"{sink.name}|{record.get('id')}"
            next_due = now + self.backoff.delay_ms(attempts, key, error.retry_after_s)
            count(sink.name, "deferred")
            return [
                retry_value(
                    sink,
                    item,
                    attempts,
                    self.settings.max_attempts,
                    next_due,
                    error,
                    now,
                    value.get("first_failed_at"),
                )
            ]
        return self._give_up(sink.name, sink.label, [item], attempts, error, now)

    # ---- state -----------------------------------------------------------------------

    def _give_up(
        self,
        name: str,
        label: str,
        items: list[AlertItem],
        attempts: int,
        error: DeliveryError,
        now: int,
    ) -> list[Output]:
        """Dead letters for `items`, logged once (one line per batch, not per alert)."""
        count(name, "dead_lettered", len(items))
        ids = [str(item.record.get("id")) for item in items]
        log.error(
            "%s: %d alert(s) dead-lettered (sink_failed) after %d attempt(s): %s; ids %s",
            label,
            len(items),
            attempts,
            redact(error.message, self._urls),
            ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else ""),
        )
        return [sink_dead_letter(name, label, it, attempts, error, now) for it in items]

    def _is_open(self, name: str, now: int) -> bool:
        return self._open_until.get(name, 0) > now

    def _open(self, name: str, now: int, attempts: int, error: DeliveryError) -> None:
        self._open_until[name] = now + self.backoff.delay_ms(attempts, name, error.retry_after_s)
        self._open_error[name] = error

    def _mark_delivered(self, name: str, items: list[AlertItem]) -> None:
        count(name, "delivered", len(items))
        for item in items:
            key, at = _alert_key(item.record), _record_time(item.record)
            if key is None or at is None:
                continue
            slot = (name, key)
            self._delivered[slot] = max(at, self._delivered.get(slot, at))
            self._delivered.move_to_end(slot)
            if len(self._delivered) > LEDGER_SIZE:
                self._delivered.popitem(last=False)

    def _superseded(self, name: str, record: dict[str, Any]) -> bool:
        key, at = _alert_key(record), _record_time(record)
        if key is None or at is None:
            return False
        newest = self._delivered.get((name, key))
        return newest is not None and newest > at
