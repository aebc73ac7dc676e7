"""The canonical event every source adapter produces, and the helpers adapters share.

An event is one finding, alert, job, change or sample. Its time comes from the record itself,
never from the processing clock, so an offline replay and the live pipeline agree.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

#: The common severity scale, lowest first. Every adapter maps its source's levels onto it.
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}

#: The last millisecond of year 9999: later times cannot be written as RFC 3339.
MAX_TS_MS = 253_402_300_799_999


@dataclass(slots=True)
class Event:
    """A canonical Vigil event, the value of `vigil.events` (keyed by `entity`).

    `ts_ms` is `time` as epoch milliseconds, kept beside it so that windows and ordering never
    parse strings. `attributes` holds the source's own identifiers and fields.
    """

    id: str
    source: str
    type: str
    ts_ms: int
    entity: str
    severity: str
    attributes: dict[str, Any] = field(default_factory=dict)
    #: Where ingest read the raw record: `{"t": topic, "p": partition, "o": offset, "i": index
    #: within the record}`; lets the process stage drop an event ingest sent twice.
    origin: dict[str, Any] | None = None

    @property
    def time(self) -> str:
        """Event time as RFC 3339 (UTC, millisecond precision)."""
        return format_time(self.ts_ms)

    def to_dict(self) -> dict[str, Any]:
        """The wire form published on `vigil.events`."""
        wire = {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "ts_ms": self.ts_ms,
            "entity": self.entity,
            "severity": self.severity,
            "attributes": self.attributes,
        }
        if self.origin is not None:
            wire["origin"] = self.origin
        return wire

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Rebuild an event from its wire form; ValueError when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("a canonical event must be a JSON object")
        ts_ms = data.get("ts_ms")
        if not isinstance(ts_ms, int):
            ts_ms = parse_time(data["time"])
        return cls(
            id=data["id"],
            source=data["source"],
            type=data["type"],
            ts_ms=ts_ms,
            entity=data["entity"],
            severity=data["severity"],
            attributes=data.get("attributes") or {},
            origin=data.get("origin") if isinstance(data.get("origin"), dict) else None,
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def format_time(ts_ms: int) -> str:
    """Epoch milliseconds to RFC 3339 UTC, e.g. `2022-05-01T23:29:32.918Z`."""
    second, millis = divmod(ts_ms, 1000)
    return f"{_second_text(second)}{millis:03d}Z"


@functools.lru_cache(maxsize=4096)
def _second_text(second: int) -> str:
    """`2022-05-01T23:29:32.` for an epoch second. Cached: a worker formats the same few
    seconds over and over, interleaved across partitions and agents (strftime was ~3 % of a
    worker's CPU, and still 2.6 % with only the last second remembered)."""
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")


def parse_time(value: Any) -> int:
    """Parse a record's timestamp into epoch milliseconds.

    Accepts RFC 3339 / ISO 8601 strings (any fraction length, `Z` or an offset), and numbers
    in seconds, milliseconds, microseconds or nanoseconds since the epoch (told apart by size).
    Raises ValueError for anything else, including times before 1970 or after year 9999.
    """
    ts_ms = _parse_time(value)
    if not 0 <= ts_ms <= MAX_TS_MS:
        raise ValueError(f"timestamp out of range: {value!r}")
    return ts_ms


def _parse_time(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        return _epoch_number_to_ms(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    text = value.strip()
    try:
        return _epoch_number_to_ms(float(text))
    except ValueError:
        pass
    if text.endswith(" UTC"):  # GitLab: "2016-08-12 15:23:28 UTC"
        text = text[:-4] + "Z"
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python accepts at most 6 fraction digits; Falco and Kubernetes write 9.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{(frac + '000000')[:6]}{tail}"
    text = text.replace(" ", "T", 1) if "T" not in text else text
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":" and text[-4:].isdigit():
        text = text[:-2] + ":" + text[-2:]  # +0000 -> +00:00
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not a timestamp: {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # Integer arithmetic: `int(dt.timestamp() * 1000)` lost a millisecond to float rounding
    # for some times (e.g. 1987-03-24T10:37:10.193Z).
    return (dt - _EPOCH) // _MILLISECOND


def _epoch_number_to_ms(number: float) -> int:
    if number != number or number < 0 or number > 1e21:  # NaN, negative or absurd
        raise ValueError(f"not a timestamp: {number!r}")
    if number >= 1e17:  # nanoseconds
        return int(number // 1_000_000)
    if number >= 1e14:  # microseconds
        return int(number // 1_000)
    if number >= 1e11:  # milliseconds
        return int(number)
    return int(number * 1000)  # seconds


def event_id(source: str, *parts: Any) -> str:
    """A deterministic event id: the same record always yields the same id.

    Built from the source name and the record's own identifying parts (its bytes, an id the
    tool assigned, an index within a multi-event record). Replays and retries can therefore
    be de-duplicated downstream by id.
    """
    digest = hashlib.blake2b(digest_size=12)
    digest.update(source.encode())
    for part in parts:
        digest.update(b"\xff")
        if isinstance(part, bytes):
            digest.update(part)
        elif isinstance(part, str):
            digest.update(part.encode())
        else:
            digest.update(orjson.dumps(part, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def max_severity(*severities: str) -> str:
    """The highest of the given severities on the common scale."""
    return max(severities, key=lambda s: SEVERITY_RANK.get(s, 0))
