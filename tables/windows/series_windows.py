"""Windowed series per entity, closed by the partition watermark, scored by the anomaly detector.

Each metric sample and each event feeds tumbling event-time windows of its series (see
tables/windows/series.py for which series). When the partition's watermark passes a window's end
plus the grace period the window closes: its final value (mean for metrics, count for rates) is
emitted once on `vigil.windows` and fed, in event-time order, to the series' online anomaly
detector (tables/anomaly/detector.py for metric means, tables/anomaly/rate_detector.py for event
counts); a score at or above the threshold is emitted on `vigil.anomalies`.

State per series (one table value): `{"src", "kind", "name", "entity", "open",
"last_end", "late"}`. The detector's state (up to 64 KiB) sits under its
own key, `<series>#det`, so that it is read and written once per closed window rather than on
every event.

Watermarks are kept per partition *and source* under `~wm|<source>` (Faust stores a key in the
partition of the event that wrote it). Every series is fed by one source, and one source's
records arrive in order when its producer keeps them in order (one raw partition per producer,
or keyed records, as `vigil replay` and `vigil generate` do), while different raw topics are
consumed at different paces: a per-source watermark keeps a lagging topic from making another's
events late.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.model.events import Event, event_id, format_time
from app.model.outputs import Output
from app.runtime.due_heap import DueHeap
from app.runtime.staged import StagedState
from tables.anomaly import detector as anomaly_detector
from tables.anomaly.rate_detector import RateDetectorConfig, new_rate_state, update_rate
from tables.windows.event_windows import WindowSpec, add_event, advance_watermark, close_due
from tables.windows.series import SeriesPoint, series_points

WATERMARK_PREFIX = "~wm|"
DETECTOR_SUFFIX = "#det"


def watermark_key(source: str) -> str:
    """The state key of a source's watermark on the current partition."""
    return WATERMARK_PREFIX + source


#: Closed-window values kept per series for the dashboard's sparklines.
RECENT_WINDOWS = 30

#: Longest run of empty windows fed to a rate series' detector as zeros after a gap.
MAX_ZERO_FILL = 60


class WindowSchedule(DueHeap):
    """`(close time, series key)` for one partition's source.

    Rebuilt from the table after a restart or rebalance (`rebuild`), so it never needs a
    changelog of its own.
    """

    def closed(self, watermark: int) -> list[str]:
        """Keys with a window closed at `watermark`, each once, in (close time, key) order."""
        due: list[str] = []
        seen: set[str] = set()
        while (entry := self.pop_due(watermark)) is not None:
            key = entry[1]
            if key not in seen:
                seen.add(key)
                due.append(key)
        return due

    @classmethod
    def rebuild(cls, items: Any, source: str, spec: WindowSpec) -> WindowSchedule:
        """A schedule for every open window of a source in one partition's `(key, value)`
        items."""
        schedule = cls()
        for key, value in items:
            if isinstance(value, dict) and value.get("src") == source and value.get("open"):
                for start in value["open"]:
                    schedule.push(spec.closes_at(int(start)), key)
        return schedule


@dataclass(frozen=True, slots=True)
class SeriesConfig:
    """Windowing and detection settings for every series."""

    spec: WindowSpec
    threshold: float
    emit_windows: bool
    detector: anomaly_detector.DetectorConfig
    rate_detector: RateDetectorConfig


class SeriesWindows:
    """Applies one event to its series windows and closes what the watermark makes due."""

    def __init__(self, config: SeriesConfig) -> None:
        self.config = config

    def apply(
        self,
        event: Event,
        series: StagedState,
        schedule: WindowSchedule,
    ) -> list[Output]:
        """Fold the event into its series, advance the watermark, close due windows."""
        spec = self.config.spec
        outputs: list[Output] = []
        mark_key = watermark_key(event.source)
        mark = series.get(mark_key) or {"wm": None}
        watermark = mark["wm"]
        for point in series_points(event):
            state = series.get(point.key) or self._new_state(point, event)
            assignment = add_event(
                state.get("open"),
                event.ts_ms,
                point.value,
                spec,
                watermark if watermark is not None else -(2**62),
            )
            state = {**state, "open": assignment.windows}
            if assignment.late:
                state["late"] = state.get("late", 0) + 1
                outputs.append(self._late(event, point, watermark))
            series[point.key] = state
            for start in assignment.opened:
                schedule.push(spec.closes_at(start), point.key)
        advanced = advance_watermark(watermark, event.ts_ms)
        if advanced != watermark:
            series[mark_key] = {"wm": advanced}
            watermark = advanced
        if watermark is not None:
            for key in schedule.closed(watermark):
                outputs.extend(self.close(key, watermark, series))
        return outputs

    def close(self, key: str, watermark: int, series: StagedState) -> list[Output]:
        """Close every window of `key` due at `watermark`: finals, detector, anomalies."""
        state = series.get(key)
        if not state or not state.get("open"):
            return []
        remaining, closed = close_due(state["open"], self.config.spec, watermark)
        if not closed:
            return []
        state = {**state, "open": remaining}
        detector_key = key + DETECTOR_SUFFIX
        detector = series.get(detector_key) or (
            new_rate_state()
            if state["kind"] == "rate"
            else anomaly_detector.new_state(self.config.detector)
        )
        outputs: list[Output] = []
        for start, aggregate in closed:
            detector, finals = self._final(key, state, detector, start, aggregate)
            outputs.extend(finals)
        series[key] = state
        series[detector_key] = detector
        return outputs

    def _final(
        self,
        key: str,
        state: dict[str, Any],
        detector: dict[str, Any],
        start: int,
        aggregate: dict[str, Any],
    ) -> tuple[dict[str, Any], list[Output]]:
        """Emit a closed window and score it (updates `state["last_end"]`)."""
        size = self.config.spec.size_ms
        end = start + size
        is_rate = state["kind"] == "rate"
        value = float(aggregate["count"]) if is_rate else aggregate["sum"] / aggregate["count"]
        outputs: list[Output] = []
        if self.config.emit_windows:
            outputs.append(
                Output(
                    "windows",
                    key,
                    {
                        "id": event_id("window", key, start),
                        "series": key,
                        "entity": state["entity"],
                        "kind": state["kind"],
                        "name": state["name"],
                        "start": format_time(start),
                        "end": format_time(end),
                        "start_ms": start,
                        "value": value,
                        **aggregate,
                    },
                )
            )
        last_end = state.get("last_end")
        if is_rate:
            if last_end is not None and self.config.spec.hop_ms == size:
                gap = (start - last_end) // size
                for _ in range(min(gap, MAX_ZERO_FILL)):
                    detector, _ = update_rate(detector, 0.0, self.config.rate_detector)
            detector, score = update_rate(detector, value, self.config.rate_detector)
        else:
            detector, score = anomaly_detector.update(detector, end, value, self.config.detector)
        state["last_end"] = end
        state["recent"] = [*(state.get("recent") or [])[-(RECENT_WINDOWS - 1) :], round(value, 6)]
        if score.score >= self.config.threshold:
            anomaly = self._anomaly(key, state, start, end, value, score)
            state["last_anomaly"] = {
                k: anomaly.value[k] for k in ("time", "value", "score", "explanation")
            }
            outputs.append(anomaly)
        return detector, outputs

    def _anomaly(
        self,
        key: str,
        state: dict[str, Any],
        start: int,
        end: int,
        value: float,
        score: anomaly_detector.Score,
    ) -> Output:
        what = "events per window" if state["kind"] == "rate" else "window mean"
        return Output(
            "anomalies",
            key,
            {
                "id": event_id("anomaly", key, start),
                "series": key,
                "entity": state["entity"],
                "kind": state["kind"],
                "name": state["name"],
                "time": format_time(end),
                "window_start": format_time(start),
                "window_end": format_time(end),
                "value": value,
                "expected": list(score.expected) if score.expected is not None else None,
                "score": round(score.score, 4),
                "explanation": f"{state['name']} on {state['entity']}: {what} {value:g}; "
                + score.explanation,
            },
        )

    @staticmethod
    def _late(event: Event, point: SeriesPoint, watermark: int | None) -> Output:
        return Output(
            "late",
            event.entity,
            {
                "id": event_id("late", event.id, point.key),
                "event_id": event.id,
                "series": point.key,
                "entity": event.entity,
                "time": event.time,
                "watermark": format_time(watermark) if watermark is not None else None,
                "lateness_ms": (watermark - event.ts_ms) if watermark is not None else 0,
            },
        )

    @staticmethod
    def _new_state(point: SeriesPoint, event: Event) -> dict[str, Any]:
        return {
            "src": event.source,
            "kind": point.kind,
            "name": point.name,
            "entity": event.entity,
            "open": {},
            "last_end": None,
            "late": 0,
        }

    def flush(self, series: StagedState, keys: list[str]) -> list[Output]:
        """Close every open window of `keys` (end of input in offline replay)."""
        outputs: list[Output] = []
        for key in sorted(keys):
            outputs.extend(self.close(key, 2**62, series))
        return outputs
