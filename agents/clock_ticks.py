"""Clock ticks: every worker writes one record to each `vigil.events` partition every
`VIGIL_CLOCK_TICK_MS`, so a partition's clock notices sources that went quiet even when nothing
else arrives (tables/partition_clock.py). A tick is only its Kafka timestamp; its value marks it
(`partition_clock.is_tick`), and consumers of `vigil.events` skip it."""

from __future__ import annotations

import time

from agents.sending import send_outputs
from app.faust_app import app, declare_output_topics, settings
from app.outputs import Output
from app.pipeline import partition_keys
from tables.partition_clock import tick_value


def clock_ticks(now_ms: int) -> list[Output]:
    """One tick per `vigil.events` partition (each under a key that hashes to it)."""
    value = tick_value(now_ms)
    return [Output("events", key, value) for key in partition_keys(settings.partitions)]


if settings.clock_tick_ms > 0:

    @app.timer(interval=settings.clock_tick_ms / 1000)
    async def send_clock_ticks() -> None:
        """Write this period's ticks (no acknowledgement awaited: the next period repeats)."""
        await declare_output_topics()
        await send_outputs(clock_ticks(int(time.time() * 1000)))
