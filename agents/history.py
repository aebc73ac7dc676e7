"""This worker's display history (app/web/history.py), fed by the agents after a step's outputs
were acknowledged and its writes applied.

Best effort by design: a failure here is logged and forgotten, never raised into an agent, and
nothing here is read back by the pipeline (see app/web/history.py for what that costs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from app.faust_app import app
from app.model.outputs import Output
from app.runtime.current_event import make_current
from app.runtime.partition_clock import CLOCK_KEY
from app.web.history import History, expected_band
from app.web.live_views import LiveIndex, alert_projection, entity_projection, writes_of
from tables.windows.series_windows import DETECTOR_SUFFIX

log = logging.getLogger(__name__)

#: The one history of this worker process.
HISTORY = History()
#: This worker's alert instances and entities as the pages use them (app/web/live_views.py).
ALERTS = LiveIndex(alert_projection)
ENTITIES = LiveIndex(entity_projection)
#: Which staged table each index follows (app/pipeline.py's table names).
_FOLLOWED = (("alerts", ALERTS), ("entities", ENTITIES))

Captured = list[tuple[LiveIndex, list[tuple[str, bool, Any]]]]


@app.on_partitions_revoked.connect
async def _stale_indexes(sender, revoked, **kwargs) -> None:
    """Partitions may move: the indexes are rebuilt from the tables on next use."""
    for _, index in _FOLLOWED:
        index.invalidate()


def capture(batch: Any, partitions: Iterable[int]) -> Captured:
    """A batch's writes to the followed tables, taken before the agent commits them."""
    captured: Captured = []
    try:
        for partition in partitions:
            tables = batch.tables_of(partition)
            for name, index in _FOLLOWED:
                staged = tables.get(name)
                # Taken even while the index is unbuilt: a page may build it from the table
                # while the agent waits for the broker, before these writes reach the table.
                if staged is not None:
                    captured.append((index, writes_of(staged.changes())))
    except Exception:  # display only: never stall the agent
        log.debug("history: batch writes not captured", exc_info=True)
        return []
    return captured


def _now_ms() -> int:
    return int(time.time() * 1000)


def record_process(
    outputs_of: Mapping[int, list[Output]],
    last_of_partition: Mapping[int, Any],
    observed: Iterable[tuple[list[Output], str | None, int | None, str]],
    series: Any,
    clocks: Any,
    captured: Captured = (),
) -> None:
    """After a process batch: events per source, windows with their expected range,
    anomalies, alerts, drift, each partition's clock, and the `capture`d writes. `series` and
    `clocks` are the tables the agent wrote (read under an event of each partition)."""
    try:
        for index, writes in captured:
            index.apply(writes)
        now = _now_ms()
        for _, source, _, topic in observed:
            if topic == "events" and source:
                HISTORY.count(source, now)
        for partition, outputs in outputs_of.items():
            last = last_of_partition.get(partition)
            if last is None:
                continue
            make_current(last)

            def band_of(key: str, kind: str) -> tuple[float, float] | None:
                return expected_band(kind, series.get(key + DETECTOR_SUFFIX))

            HISTORY.record(outputs, now, band_of)
            HISTORY.clock(partition, clocks.get(CLOCK_KEY))
    except Exception:  # display only: never stall the agent
        log.debug("history: process batch not recorded", exc_info=True)


def record_risk(outputs: Iterable[Output]) -> None:
    """After a risk step: the scores it emitted."""
    try:
        HISTORY.record(outputs, _now_ms())
    except Exception:
        log.debug("history: risk step not recorded", exc_info=True)
