"""Sink stage: `vigil.alerts` -> Alertmanager and webhooks, with a retry topic.

Two agents, both registered only when a sink is configured (app/settings/sinks.py):

- `deliver_alerts` reads `vigil.alerts` in batches (`processed_batches`, as every agent:
  offsets are released only after the batch was handled, app/runtime/acking.py) and hands
  each batch to the dispatcher. What a sink
  could not take comes back as retry records (`vigil.alerts-retry`) or dead letters
  (`vigil.deadletter`, `sink_failed`); they are sent and acknowledged by the broker before the
  batch is, so a crash repeats deliveries (Alertmanager and receivers de-duplicate by labels
  and `id`) but never loses one.
- `retry_alerts` reads `vigil.alerts-retry` and retries each record when it is due, sleeping
  at most `VIGIL_SINK_RETRY_MAX_WAIT_S` per record (a record not due by then is re-queued), so
  waiting never blocks the alerts agent.
"""

from __future__ import annotations

import aiohttp

from app.faust_app import app, settings
from app.faust_topics import alerts_in_topic, declare_output_topics, output_topics, retry_in_topic
from app.model.outputs import Origin, Output
from app.runtime.acking import processed_batches, processed_events
from app.sinks.delivery import COUNTS
from app.sinks.dispatch import Dispatcher

sink_settings = settings.sinks
dispatcher = Dispatcher(sink_settings)


def counts() -> dict[str, int]:
    """Deliveries and failures so far, `<sink>:<outcome>` -> count."""
    return {f"{sink}:{outcome}": n for (sink, outcome), n in sorted(COUNTS.items())}


async def _send_confirmed(outputs: list[Output]) -> None:
    """Send retry records and dead letters; return once the broker acknowledged them all."""
    pending = []
    for out in outputs:
        topic = output_topics[out.topic]  # `alerts-retry` or `deadletter`
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
        async with aiohttp.ClientSession() as session:
            async for events in processed_batches(
                stream, sink_settings.batch_size, sink_settings.batch_within_s
            ):
                batch = [(event.value, _origin(event.message)) for event in events]
                await _send_confirmed(await dispatcher.deliver_batch(session, batch))

    @app.agent(retry_in_topic, concurrency=1)
    async def retry_alerts(stream):
        """Retry deliveries that failed, each when due, until delivered or dead-lettered."""
        await declare_output_topics()
        async with aiohttp.ClientSession() as session:
            async for event in processed_events(stream):
                outputs = await dispatcher.retry(session, event.value, _origin(event.message))
                await _send_confirmed(outputs)
