"""`format_time` reuses the second it formatted last: same text as a full strftime, whatever
the order of the calls."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from app.model.events import format_time, parse_time

_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _reference(ts_ms: int) -> str:
    dt = datetime.fromtimestamp(ts_ms // 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


@given(st.lists(st.integers(min_value=0, max_value=_MAX_MS), min_size=1, max_size=20))
def test_format_time_matches_strftime_in_any_order(times: list[int]) -> None:
    for ts_ms in [*times, *sorted(times), times[0]]:
        assert format_time(ts_ms) == _reference(ts_ms)
        assert parse_time(format_time(ts_ms)) == ts_ms


def test_format_time_within_one_second_and_across_it() -> None:
    assert format_time(1_651_447_772_918) == "2022-05-01T23:29:32.918Z"
    assert format_time(1_651_447_772_001) == "2022-05-01T23:29:32.001Z"
    assert format_time(1_651_447_773_000) == "2022-05-01T23:29:33.000Z"
    assert format_time(0) == "1970-01-01T00:00:00.000Z"
