"""Clock ticks: every worker writes one record to each `vigil.events` partition every
`VIGIL_CLOCK_TICK_MS`, so a partition's clock notices sources that went quiet even when nothing
else arrives (app/runtime/partition_clock.py). A tick carries its Kafka timestamp and the worker's
ingest progress: per raw partition it reads, the newest event time sent and whether records
are still waiting in it (app/runtime/raw_progress.py). Its value marks it
(`partition_clock.is_tick`), and consumers of `vigil.events` other than the process agent
skip it."""

from __future__ import annotations

import time
from typing import Any

from faust.types import TP

from agents.ingest import progress
from app.faust_app import app, catalog, settings
from app.faust_topics import declare_output_topics
from app.model.outputs import Output
from app.pipeline import partition_keys
from app.runtime.partition_clock import tick_value
from app.runtime.sending import send_outputs


def clock_ticks(now_ms: int, report: dict[str, Any] | None = None) -> list[Output]:
    """One tick per `vigil.events` partition (each under a key that hashes to it)."""
    value = tick_value(now_ms, report)
    return [Output("events", key, value) for key in partition_keys(settings.partitions)]


def _raw_partitions() -> tuple[list[tuple[str, int]], Any, Any] | None:
    """The raw partitions assigned to this worker, with their highwater and committed
    offsets as functions; None while that is not known (starting, rebalancing)."""
    consumer = app.consumer
    raw = set(catalog.raw_topics())
    try:
        assigned = [(tp.topic, tp.partition) for tp in consumer.assignment() if tp.topic in raw]
    except Exception:  # no consumer yet (starting) or a rebalance under way: nothing known
        return None

    def highwater(tp: tuple[str, int]) -> int | None:
        try:
            return consumer.highwater(TP(*tp))
        except Exception:  # not assigned any more
            return None

    def committed(tp: tuple[str, int]) -> int | None:
        return consumer._committed_offset.get(TP(*tp))  # as app/runtime/acking.py reads it

    return assigned, highwater, committed


def ingest_report() -> dict[str, Any]:
    """This worker's ingest progress over the raw partitions assigned to it."""
    raw = _raw_partitions()
    return progress.report(*raw) if raw is not None else {}


def ingest_backlog() -> int:
    """Raw records left to read by this worker's ingest (0 when not known)."""
    raw = _raw_partitions()
    return progress.backlog(*raw) if raw is not None else 0


if settings.clock_tick_ms > 0:

    @app.timer(interval=settings.clock_tick_ms / 1000)
    async def send_clock_ticks() -> None:
        """Write this period's ticks (no acknowledgement awaited: the next period repeats)."""
        await declare_output_topics()
        await send_outputs(clock_ticks(int(time.time() * 1000), ingest_report()))
