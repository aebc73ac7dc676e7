"""The Faust-free processing core shared by the agents and `vigil replay --offline`.

`ingest` turns one raw record into canonical events (or a dead letter). `process` applies the
stateful logic to one event and returns a `Step`: the outputs to send and the staged state
writes. The agent sends the outputs, waits for the broker's acknowledgement, then commits the
writes to its Faust tables; offline replay commits to dicts at once. Both paths run the same code
on the same state shapes, so what one emits the other emits too.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from app.events import Event
from app.masking import MaskingPolicy
from app.outputs import Origin, Output, dead_letter
from app.settings import Settings
from app.sources.decode import DecodeLimits
from app.sources.errors import NormalizeError
from app.sources.normalize import Normalizer
from tables.anomaly_detector import METRIC_DETECTOR
from tables.entity_stats import update_entity_stats
from tables.rate_detector import RateDetectorConfig
from tables.series_windows import SeriesConfig, SeriesWindows, WindowSchedule
from tables.staged import StagedState
from tables.windows import WindowSpec


@dataclass(slots=True)
class PipelineState:
    """The state `process` reads and writes: one mapping per table (dicts offline)."""

    entities: MutableMapping[str, Any] = field(default_factory=dict)
    series: MutableMapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Step:
    """What processing one event produced: outputs to send, then state writes to commit."""

    outputs: list[Output]
    staged: list[StagedState]

    def commit(self) -> None:
        """Apply the staged writes (after the outputs were acknowledged)."""
        for state in self.staged:
            state.commit()


def build_normalizer(settings: Settings) -> Normalizer:
    """The Normalizer configured from settings (limits and masking)."""
    return Normalizer(
        limits=DecodeLimits(max_bytes=settings.max_record_bytes, max_depth=settings.max_depth),
        masking=MaskingPolicy(enabled=settings.masking, mask_ips=settings.mask_ips),
    )


def series_config(settings: Settings) -> SeriesConfig:
    """Windowing and detection settings for every series."""
    return SeriesConfig(
        spec=WindowSpec.tumbling(settings.window_ms, settings.window_grace_ms),
        threshold=settings.anomaly_threshold,
        emit_windows=settings.emit_windows,
        detector=METRIC_DETECTOR,
        rate_detector=RateDetectorConfig(),
    )


class Pipeline:
    """Raw record -> canonical events -> stateful logic -> outputs for downstream topics."""

    def __init__(self, settings: Settings, state: PipelineState | None = None) -> None:
        self.settings = settings
        self.state = state if state is not None else PipelineState()
        self.normalizer = build_normalizer(settings)
        self.series = SeriesWindows(series_config(settings))
        self._schedules: dict[tuple[int, str], WindowSchedule] = {}

    def ingest(self, raw: bytes, family: str | None, origin: Origin) -> list[Output]:
        """Normalize one raw record into `events` outputs, or one `deadletter` output."""
        try:
            events = self.normalizer.normalize(raw, family=family)
        except NormalizeError as error:
            return [dead_letter(origin, error, raw)]
        if origin.timestamp_ms is not None:
            for event in events:
                if event.attributes.get("time_source") == "none":
                    # The record carries no time of its own (e.g. a bare Terraform plan): the
                    # broker's record timestamp, fixed at produce time, is the next best.
                    event.ts_ms = origin.timestamp_ms
                    event.attributes["time_source"] = "kafka_timestamp"
        return [Output("events", event.entity, event.to_dict()) for event in events]

    def process(self, event: Event, partition: int = 0, offset: int | None = None) -> Step:
        """Apply the stateful logic to one canonical event read at (partition, offset).

        `offset` lets state recognise an event replayed after a crash (offline: None).
        """
        entities = StagedState(self.state.entities)
        series = StagedState(self.state.series)
        stats = entities.get(event.entity)
        if offset is None or stats is None or stats.get("_o", -1) < offset:
            entities[event.entity] = {
                **update_entity_stats(stats, event),
                "_o": offset if offset is not None else -1,
            }
        schedule = self.schedule(partition, event.source)
        outputs = self.series.apply(event, partition, offset, series, schedule)
        return Step(outputs, [entities, series])

    def schedule(self, partition: int, source: str) -> WindowSchedule:
        """The window-close schedule of a partition's source, rebuilt from state when needed."""
        schedule = self._schedules.get((partition, source))
        if schedule is None:
            schedule = WindowSchedule.rebuild(
                self.state.series.items(), partition, source, self.series.config.spec
            )
            self._schedules[(partition, source)] = schedule
        return schedule

    def forget_schedules(self) -> None:
        """Drop the in-memory schedules (after a rebalance); they are rebuilt on demand."""
        self._schedules.clear()

    def flush(self) -> Step:
        """End of input (offline only): close every open window."""
        series = StagedState(self.state.series)
        keys = [k for k, v in self.state.series.items() if isinstance(v, dict) and v.get("open")]
        return Step(self.series.flush(series, keys), [series])
