"""A bounded, in-memory history of what one worker emitted, for the web view's charts.

Display only: nothing here feeds back into an output or a table, so it cannot change what the
pipeline emits (determinism) and it has no changelog or journal (crash safety). The price is
that a worker's history starts empty after a restart and moves with nothing on a rebalance:
charts show what this worker saw since it started, while the tables keep the current state
(scores, open alerts, drifted resources). Every collection is bounded:

- rates: per source, events processed per `bucket_ms` of wall-clock time (and records sent to
  `vigil.alerts`), the last `rate_buckets` buckets;
- series: per windowed series, the last `series_points` closed windows `[start_ms, value,
  low, high, score]` (`low`/`high`: the detector's expected range, None while it learns;
  `score`: set on a window that was reported as an anomaly), at most `max_series` series,
  least recently updated dropped first; series with an anomaly are kept apart (`max_anomalous`)
  so a flood of quiet series cannot push them out;
- risk: per subject, the last `risk_points` emitted scores `[time_ms, score, {factor: points}]`
  (event time), at most `max_subjects`;
- drift: the last `vigil.drift` record per resource, at most `max_drift`;
- clocks: per `vigil.events` partition, its clock and per-source watermarks as last seen;
- lag: consumer lag samples per wall-clock bucket, the last `rate_buckets`.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.model.outputs import Output


@dataclass(frozen=True, slots=True)
class HistoryBounds:
    """How much the history keeps (see the module docstring)."""

    bucket_ms: int = 10_000
    rate_buckets: int = 360  # 60 minutes of 10 s buckets
    series_points: int = 60
    max_series: int = 1000
    max_anomalous: int = 300
    risk_points: int = 240
    max_subjects: int = 1000
    max_drift: int = 1000


def expected_band(kind: str, detector: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """The expected range a series' detector holds now: for a rate, the expected count
    +- 3 spreads (tables/anomaly/rate_detector.py); for a metric, the range of values it has seen
    (tables/anomaly/detector.py `lo`/`hi`). None while the detector has no data."""
    if not detector:
        return None
    if kind == "rate":
        if not detector.get("n"):
            return None
        expected = max(float(detector.get("mean", 0.0)), 1.0)
        spread = math.sqrt(max(float(detector.get("var", 0.0)), expected))
        return (max(0.0, expected - 3 * spread), expected + 3 * spread)
    low, high = detector.get("lo"), detector.get("hi")
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return None
    if not math.isfinite(low) or not math.isfinite(high) or low > high:
        return None
    return (float(low), float(high))


def _bounded_put(store: OrderedDict, key: str, value: Any, limit: int) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > limit:
        store.popitem(last=False)


class History:
    """One worker's display history (module docstring); every method is O(outputs)."""

    def __init__(self, bounds: HistoryBounds | None = None) -> None:
        self.bounds = bounds or HistoryBounds()
        #: bucket start (wall-clock ms) -> {source: events, "~alerts": alert records}
        self.rates: OrderedDict[int, dict[str, int]] = OrderedDict()
        self.series: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.anomalous: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.risk: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.drift: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.clocks: dict[int, dict[str, Any]] = {}
        self.lag: OrderedDict[int, int] = OrderedDict()

    # ---- recording ------------------------------------------------------------------------

    def _bucket(self, now_ms: int) -> int:
        return now_ms - now_ms % self.bounds.bucket_ms

    def count(self, source: str, now_ms: int, n: int = 1) -> None:
        """`n` events of `source` processed at wall-clock `now_ms`."""
        bucket = self._bucket(now_ms)
        counts = self.rates.get(bucket)
        if counts is None:
            counts = self.rates[bucket] = {}
            while len(self.rates) > self.bounds.rate_buckets:
                self.rates.popitem(last=False)
        counts[source] = counts.get(source, 0) + n

    def record(
        self,
        outputs: Iterable[Output],
        now_ms: int,
        band_of: Any = None,
    ) -> None:
        """Take in a step's outputs: windows, anomalies, alerts, risk scores, drift.
        `band_of(series key, kind)` gives a window's expected range (None: unknown)."""
        for out in outputs:
            topic, value = out.topic, out.value
            if topic == "windows":
                band = band_of(value["series"], value["kind"]) if band_of else None
                self._window(value, band)
            elif topic == "anomalies":
                self._anomaly(value)
            elif topic == "alerts":
                self.count("~alerts", now_ms)
            elif topic == "risk":
                self._risk(value)
            elif topic == "drift":
                resource = str(value.get("resource") or out.key or "")
                _bounded_put(self.drift, resource, value, self.bounds.max_drift)

    def _points(self, key: str, value: Mapping[str, Any]) -> dict[str, Any]:
        entry = self.anomalous.get(key)
        if entry is not None:
            self.anomalous.move_to_end(key)
            return entry
        entry = self.series.get(key)
        if entry is None:
            entry = {
                "series": key,
                "entity": value.get("entity"),
                "kind": value.get("kind"),
                "name": value.get("name"),
                "points": deque(maxlen=self.bounds.series_points),
                "anomalies": 0,
                "last_anomaly": None,
            }
        _bounded_put(self.series, key, entry, self.bounds.max_series)
        return entry

    def _window(self, value: Mapping[str, Any], band: tuple[float, float] | None) -> None:
        entry = self._points(value["series"], value)
        start = int(value["start_ms"])
        points = entry["points"]
        low, high = band if band is not None else (None, None)
        point = [start, value["value"], low, high, None]
        for existing in points:  # a window sent again after a crash: same start
            if existing[0] == start:
                existing[1:4] = point[1:4]
                return
        points.append(point)

    def _anomaly(self, value: Mapping[str, Any]) -> None:
        key = value["series"]
        entry = self.series.pop(key, None) or self._points(key, value)
        self.series.pop(key, None)
        _bounded_put(self.anomalous, key, entry, self.bounds.max_anomalous)
        start = _start_ms(value)
        expected = value.get("expected")
        for point in entry["points"]:
            if point[0] == start:
                point[4] = value.get("score")
                if isinstance(expected, list) and len(expected) == 2:
                    point[2], point[3] = expected
                break
        else:
            low, high = (
                expected if isinstance(expected, list) and len(expected) == 2 else (None,) * 2
            )
            entry["points"].append([start, value.get("value"), low, high, value.get("score")])
        entry["anomalies"] += 1
        entry["last_anomaly"] = {
            k: value.get(k) for k in ("time", "value", "score", "explanation", "expected")
        }

    def _risk(self, value: Mapping[str, Any]) -> None:
        subject = str(value.get("entity") or "")
        if not subject:
            return
        entry = self.risk.get(subject)
        if entry is None:
            entry = {
                "subject": subject,
                "type": value.get("entity_type"),
                "points": deque(maxlen=self.bounds.risk_points),
            }
        _bounded_put(self.risk, subject, entry, self.bounds.max_subjects)
        time_ms = _time_ms(value.get("time"))
        factors = {
            str(c.get("factor")): c.get("points", 0)
            for c in value.get("contributions") or []
            if isinstance(c, dict)
        }
        points = entry["points"]
        if points and points[-1][0] == time_ms:
            points[-1] = [time_ms, value.get("score"), factors]
        else:
            points.append([time_ms, value.get("score"), factors])

    def clock(self, partition: int, record: Mapping[str, Any] | None) -> None:
        """The partition clock record (app/runtime/partition_clock.py) as last seen."""
        if not record:
            return
        self.clocks[partition] = {
            "clock": record.get("clock", record.get("wm")),
            "watermark": record.get("wm"),
            "sources": {s: mark[0] for s, mark in (record.get("src") or {}).items() if mark},
        }

    def sample_lag(self, lag: int, now_ms: int) -> None:
        """Total consumer lag of this worker at wall-clock `now_ms` (last sample per bucket)."""
        _bounded_put(self.lag, str(self._bucket(now_ms)), lag, self.bounds.rate_buckets)

    # ---- reading --------------------------------------------------------------------------

    def rate_series(self, now_ms: int, minutes: int) -> dict[str, Any]:
        """Per-second rates per source (and `alerts`) over the last `minutes`, one value per
        bucket, oldest first: `{"bucket_ms", "times": [...], "sources": {name: [...]}}`."""
        size = self.bounds.bucket_ms
        last = self._bucket(now_ms)
        count = max(1, min(self.bounds.rate_buckets, minutes * 60_000 // size))
        times = [last - (count - 1 - i) * size for i in range(count)]
        names = sorted({s for counts in self.rates.values() for s in counts})
        sources = {
            name: [round(self.rates.get(t, {}).get(name, 0) * 1000 / size, 3) for t in times]
            for name in names
        }
        return {"bucket_ms": size, "times": times, "sources": sources}

    def series_of(self, key: str) -> dict[str, Any] | None:
        """One series' history (JSON-ready)."""
        entry = self.anomalous.get(key) or self.series.get(key)
        return _plain(entry) if entry is not None else None

    def anomalous_series(self) -> list[dict[str, Any]]:
        """Every series with an anomaly, JSON-ready."""
        return [_plain(entry) for entry in self.anomalous.values()]

    def risk_of(self, subject: str) -> list[list[Any]]:
        """A subject's score history `[time_ms, score, {factor: points}]`, oldest first."""
        entry = self.risk.get(subject)
        return list(entry["points"]) if entry is not None else []

    def lag_series(self) -> list[list[int]]:
        """`[[bucket start ms, lag], ...]`, oldest first."""
        return [[int(t), lag] for t, lag in self.lag.items()]


def _plain(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {**entry, "points": [list(p) for p in entry["points"]]}


def _time_ms(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    from app.model.events import parse_time

    try:
        return parse_time(value)
    except (TypeError, ValueError):
        return 0


def _start_ms(anomaly: Mapping[str, Any]) -> int:
    return _time_ms(anomaly.get("window_start") or anomaly.get("time"))
