"""This worker's display history (tables/history.py), fed by the agents after a step's outputs
were acknowledged and its writes applied.

Best effort by design: a failure here is logged and forgotten, never raised into an agent, and
nothing here is read back by the pipeline (see tables/history.py for what that costs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from agents.current_event import make_current
from app.outputs import Output
from tables.history import History, expected_band
from tables.series_windows import DETECTOR_SUFFIX

log = logging.getLogger(__name__)

#: The one history of this worker process.
HISTORY = History()


def _now_ms() -> int:
    return int(time.time() * 1000)


def record_process(
    outputs_of: Mapping[int, list[Output]],
    last_of_partition: Mapping[int, Any],
    observed: Iterable[tuple[list[Output], str | None, int | None, str]],
    series: Any,
    clock_key: str,
) -> None:
    """After a process batch: events per source, windows with their expected range,
    anomalies, alerts, drift, and each partition's clock. `series` is the series table the
    agent wrote (read under an event of each partition)."""
    try:
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
            HISTORY.clock(partition, series.get(clock_key))
    except Exception:  # display only: never stall the agent
        log.debug("history: process batch not recorded", exc_info=True)


def record_risk(outputs: Iterable[Output]) -> None:
    """After a risk step: the scores it emitted."""
    try:
        HISTORY.record(outputs, _now_ms())
    except Exception:
        log.debug("history: risk step not recorded", exc_info=True)
