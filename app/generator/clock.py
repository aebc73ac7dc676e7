"""Event times in the text formats of the generated sources."""

from __future__ import annotations

from datetime import UTC, datetime

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Clock:
    """Formats event times, caching the formatted second (many records share one)."""

    def __init__(self) -> None:
        self._iso: dict[int, str] = {}

    def _second(self, ts_ms: int) -> str:
        second = ts_ms // 1000
        text = self._iso.get(second)
        if text is None:
            if len(self._iso) > 4096:
                self._iso.clear()
            text = self._iso[second] = f"{datetime.fromtimestamp(second, tz=UTC):%Y-%m-%dT%H:%M:%S}"
        return text

    def seconds(self, ts_ms: int) -> str:
        """`2024-05-01T12:00:00Z` (CloudTrail, GitHub, Terraform)."""
        return self._second(ts_ms) + "Z"

    def millis(self, ts_ms: int) -> str:
        """`...12:00:00.123Z` (Falco, Alertmanager, SARIF, logfmt lines)."""
        return f"{self._second(ts_ms)}.{ts_ms % 1000:03d}Z"

    def micros(self, ts_ms: int) -> str:
        """`...12:00:00.123000Z` (Kubernetes audit, Fluent Bit)."""
        return f"{self._second(ts_ms)}.{ts_ms % 1000:03d}000Z"

    def nanos(self, ts_ms: int) -> str:
        """`...12:00:00.123000000Z` (Trivy, Fluent Bit's `time`)."""
        return f"{self._second(ts_ms)}.{ts_ms % 1000:03d}000000Z"

    def gitlab(self, ts_ms: int) -> str:
        """`2024-05-01 12:00:00 UTC`."""
        iso = self._second(ts_ms)
        return f"{iso[:10]} {iso[11:]} UTC"

    def apache(self, ts_ms: int) -> str:
        """`01/May/2024:12:00:00 +0000` (common log format)."""
        iso = self._second(ts_ms)  # 2024-05-01T12:00:00
        return f"{iso[8:10]}/{_MONTHS[int(iso[5:7]) - 1]}/{iso[:4]}:{iso[11:]} +0000"
