"""One call of the alert stage: the tables and schedule it works on, the stage's settings and
counters, and the outputs it makes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.model.outputs import Output
from app.runtime.staged import StagedState
from tables.alerts.config import DedupConfig
from tables.alerts.scoring import Scorer
from tables.alerts.timers import TimerSchedule


@dataclass(slots=True)
class AlertStep:
    """The tables, schedule, settings and counters of one call; `outputs` collects its records."""

    alerts: StagedState
    groups: StagedState
    schedule: TimerSchedule
    flush: bool
    config: DedupConfig
    scorer: Scorer
    #: silence id -> parsed silence; fingerprint -> firing inhibition source (both global).
    silences: Mapping[str, Mapping[str, Any]]
    inhibitors: Mapping[str, Mapping[str, Any]]
    accounting: Counter[str]
    stats: Counter[str]
    outputs: list[Output] = field(default_factory=list)
