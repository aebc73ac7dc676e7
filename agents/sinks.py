"""Sink stage: `vigil.alerts` -> Alertmanager and webhooks, with a retry topic.

Two agents, both registered only when a sink is configured (app/sinks/config.py):

- `deliver_alerts` reads `vigil.alerts` in batches (`take_events`: events are acknowledged
  only after the batch was handled) and hands each batch to the dispatcher. What a sink
  could not take comes back as retry records (`vigil.alerts-retry`) or dead letters
  (`vigil.deadletter`, `sink_failed`); they are sent and acknowledged by the broker before the
  batch is, so a crash repeats deliveries (Alertmanager and receivers de-duplicate by labels
  and `id`) but never loses one.
- `retry_alerts` reads `vigil.alerts-retry` and retries each record when it is due, sleeping
  at most `VIGIL_SINK_RETRY_MAX_WAIT_S` per record (a record not due by then is re-queued), so
  waiting never blocks the alerts agent.

The retry topic is declared here until app/topics.py lists `alerts-retry` in OUTPUT_STREAMS;
then `output_topics["alerts-retry"]` is used and `VIGIL_TOPIC_ALERTS_RETRY` renames it.
"""

from __future__ import annotations

import os

import aiohttp

from app.faust_app import app, catalog, declare_output_topics, output_topics, settings
from app.outputs import Origin, Output
from app.sinks.config import SinkSettings
from app.sinks.delivery import COUNTS
from app.sinks.dispatch import RETRY_STREAM, Dispatcher

sink_settings = SinkSettings.from_env()
dispatcher = Dispatcher(sink_settings)


def _retry_topic_name() -> str:
    try:
        return catalog.name(RETRY_STREAM)
    except KeyError:  # not yet in OUTPUT_STREAMS: same naming rules by hand
        return os.environ.get("VIGIL_TOPIC_ALERTS_RETRY") or (
            f"{settings.topic_prefix}vigil.{RETRY_STREAM}"
        )


RETRY_TOPIC = _retry_topic_name()

#: `vigil.alerts` as the alerts agent reads it: bytes, decoded by the dispatcher, so a bad
#: record reaches the dead-letter topic instead of Faust's error log.
alerts_in_topic = app.topic(
    catalog.name("alerts"),
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
    internal=True,
)
#: `vigil.alerts-retry` as read by the retry agent (bytes) and as written (JSON).
retry_in_topic = app.topic(
    RETRY_TOPIC,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.partitions,
    internal=True,
)
retry_out_topic = output_topics.get(RETRY_STREAM) or app.topic(
    RETRY_TOPIC,
    key_serializer="utf8",
    value_serializer="orjson",
    partitions=settings.partitions,
    internal=True,
)


def counts() -> dict[str, int]:
    """Deliveries and failures so far, `<sink>:<outcome>` -> count."""
    return {f"{sink}:{outcome}": n for (sink, outcome), n in sorted(COUNTS.items())}


async def _send_confirmed(outputs: list[Output]) -> None:
    """Send retry records and dead letters; return once the broker acknowledged them all."""
    pending = []
    for out in outputs:
        topic = retry_out_topic if out.topic == RETRY_STREAM else output_topics[out.topic]
        pending.append(await topic.send(key=out.key, value=out.value))
    for fut in pending:
        await fut


def _origin(message) -> Origin:
    timestamp = int(message.timestamp * 1000) if message.timestamp else None
    return Origin(message.topic, message.partition, message.offset, timestamp)


if sink_settings.enabled:

    @app.agent(alerts_in_topic, concurrency=1)
    async def deliver_alerts(stream):
        """Deliver every alert notification to every configured sink."""
        await declare_output_topics()
        await retry_out_topic.maybe_declare()
        async with aiohttp.ClientSession() as session:
            async for events in stream.take_events(
                sink_settings.batch_size, within=sink_settings.batch_within_s
            ):
                batch = [(event.value, _origin(event.message)) for event in events]
                await _send_confirmed(await dispatcher.deliver_batch(session, batch))

    @app.agent(retry_in_topic, concurrency=1)
    async def retry_alerts(stream):
        """Retry deliveries that failed, each when due, until delivered or dead-lettered."""
        await declare_output_topics()
        await retry_out_topic.maybe_declare()
        async with aiohttp.ClientSession() as session:
            async for event in stream.events():
                outputs = await dispatcher.retry(session, event.value, _origin(event.message))
                await _send_confirmed(outputs)
