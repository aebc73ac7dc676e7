"""Metric samples: JSON samples and the Prometheus text exposition format.

JSON: a sample `{"name", "labels", "value", "timestamp"}`, an array of samples, or
`{"samples": [...], "timestamp": <default>}`. Text: Prometheus exposition format 0.0.4
(prometheus/docs `exposition_formats.md`): `name{label="value",...} value [timestamp_ms]`, label
values escaping `\\\\`, `\\"` and `\\n`, `# HELP`/`# TYPE`/other comments and blank lines ignored;
Prometheus 3 quoted names (`{"my.metric", "label.x"="v"}`) are read too. An OpenMetrics
timestamp (seconds with a fraction, e.g. `1520879607.789`) is accepted; exemplars are not.

Time always comes from the record: a sample without its own timestamp needs a default from the
envelope (`{"exposition": "<text>", "timestamp": ...}` or `{"samples": [...], "timestamp": ...}`),
else MISSING_FIELD. A record with no samples at all (only comments) is EMPTY.

Non-finite values (`NaN`, `+Inf`, `-Inf`) are legitimate in Prometheus and are kept: `value` is
then null (JSON has no NaN) and `value_text` holds the original token. Finite values have
`value_text` null. Consumers doing arithmetic must skip `value: null`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from app.model.events import Event, event_id, parse_time
from app.sources.alertmanager import strip_port
from app.sources.base import MAX_TS_MS, check_time_range, optional, require
from app.sources.errors import ErrorCode, NormalizeError

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
#: Go's ParseFloat spellings of the non-finite values (case-insensitive).
_SPECIAL_VALUES = {
    "nan": "NaN",
    "inf": "+Inf",
    "+inf": "+Inf",
    "infinity": "+Inf",
    "+infinity": "+Inf",
    "-inf": "-Inf",
    "-infinity": "-Inf",
}
#: Text records start with a comment, a metric name or a brace (Prometheus 3 quoted name).
#: Broken JSON objects therefore land here too and fail as MALFORMED_JSON.
_TEXT_START = re.compile(r"\s*[#a-zA-Z_:{]")


class MetricsAdapter:
    """One `metric` event per sample, keyed by the service or host the series describes."""

    name = "metrics"
    family = "metrics"
    accepts_text = True

    def matches(self, doc: Any) -> bool:
        if isinstance(doc, str):
            return bool(_TEXT_START.match(doc))
        if isinstance(doc, list):
            return bool(doc) and isinstance(doc[0], dict) and _is_sample(doc[0])
        if isinstance(doc, dict):
            return _is_sample(doc) or "samples" in doc or "exposition" in doc
        return False

    def normalize(self, doc: Any, raw: bytes) -> list[Event]:
        samples = _samples(doc)
        if not samples:
            raise NormalizeError(ErrorCode.EMPTY, "record holds no metric samples")
        return [self._event(*sample) for sample in samples]

    def _event(
        self, name: str, labels: dict[str, str], value: float, text: str | None, ts_ms: int
    ) -> Event:
        series = series_key(name, labels)
        return Event(
            id=event_id(self.name, series, ts_ms),
            source=self.name,
            type="metric",
            ts_ms=ts_ms,
            entity=_entity(name, labels),
            severity="info",
            attributes={
                "name": name,
                "labels": labels,
                "value": value if text is None else None,
                "value_text": text,
                "series": series,
            },
        )


Sample = tuple[str, dict[str, str], float, str | None, int]


def series_key(name: str, labels: dict[str, str]) -> str:
    """A stable series id: `name{a="1",b="2"}` with labels sorted and values escaped."""
    if not labels:
        return name
    body = ",".join(f'{key}="{_escape(labels[key])}"' for key in sorted(labels))
    return f"{name}{{{body}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _is_sample(doc: dict[str, Any]) -> bool:
    return "value" in doc and ("name" in doc or "labels" in doc)


def _entity(name: str, labels: dict[str, str]) -> str:
    for key in ("service", "job", "app"):
        if labels.get(key):
            return f"service:{labels[key]}"
    for key in ("instance", "host"):
        if labels.get(key):
            return f"host:{strip_port(labels[key])}"
    return f"metric:{name}"


def _samples(doc: Any) -> list[Sample]:
    """Every sample of a record, in order."""
    if isinstance(doc, str):
        return parse_exposition(doc, None)
    if isinstance(doc, list):
        return [_json_sample(item, f"[{i}]", None) for i, item in enumerate(doc)]
    if not isinstance(doc, dict):
        raise NormalizeError(ErrorCode.WRONG_TYPE, "metric record must be an object or array")
    if _is_sample(doc):
        return [_json_sample(doc, "sample", None)]
    default_ms = _time(doc["timestamp"], "timestamp") if doc.get("timestamp") is not None else None
    if "exposition" in doc:
        return parse_exposition(require(doc, "exposition", str), default_ms)
    items = require(doc, "samples", list)
    return [_json_sample(item, f"samples[{i}]", default_ms) for i, item in enumerate(items)]


def _json_sample(item: Any, where: str, default_ms: int | None) -> Sample:
    if not isinstance(item, dict):
        raise NormalizeError(ErrorCode.WRONG_TYPE, f"'{where}' must be an object")
    labels = dict(optional(item, "labels", dict, {}))
    for key, value in labels.items():
        if not isinstance(value, str):
            raise NormalizeError(ErrorCode.WRONG_TYPE, f"'{where}.labels.{key}' must be a string")
    name = labels.pop("__name__", None)
    name = optional(item, "name", str) or name
    if not name:
        raise NormalizeError(ErrorCode.MISSING_FIELD, f"'{where}.name' is missing")
    value, text = _json_value(require(item, "value"), where)
    if item.get("timestamp") is not None:
        ts_ms = _time(item["timestamp"], f"{where}.timestamp")
    elif default_ms is not None:
        ts_ms = default_ms
    else:
        raise NormalizeError(ErrorCode.MISSING_FIELD, f"'{where}.timestamp' is missing")
    return name, labels, value, text, ts_ms


def _json_value(value: Any, where: str) -> tuple[float, str | None]:
    """A number, or a string such as "0.5", "NaN", "+Inf" (Prometheus API style)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise NormalizeError(ErrorCode.WRONG_TYPE, f"'{where}.value' must be a number")
    if isinstance(value, str):
        return _parse_value(value, f"'{where}.value'")
    return float(value), None


def _parse_value(token: str, what: str) -> tuple[float, str | None]:
    special = _SPECIAL_VALUES.get(token.lower())
    if special is not None:
        return float(special.lower()), special
    try:
        if "_" in token:  # Python accepts 1_000, Prometheus does not
            raise ValueError(token)
        number = float(token)
    except ValueError:
        raise NormalizeError(
            ErrorCode.INVALID_VALUE, f"{what} is not a number: {token!r}"
        ) from None
    if not math.isfinite(number):  # e.g. "1e999"
        raise NormalizeError(ErrorCode.INVALID_VALUE, f"{what} is out of range: {token!r}")
    return number, None


def _time(value: Any, path: str) -> int:
    try:
        ts_ms = parse_time(value)
    except ValueError:
        raise NormalizeError(
            ErrorCode.INVALID_VALUE, f"'{path}' is not a timestamp: {value!r}"
        ) from None
    return check_time_range(ts_ms, path)


def parse_exposition(text: str, default_ms: int | None) -> list[Sample]:
    """Parse Prometheus text exposition lines; `default_ms` stands in for missing timestamps.

    A line that is not a valid sample raises MALFORMED_JSON (the code for an unreadable text
    format), a bad value or timestamp INVALID_VALUE, a missing timestamp MISSING_FIELD.
    """
    samples: list[Sample] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        samples.append(_LineParser(stripped, number).sample(default_ms))
    return samples


class _LineParser:
    """A cursor over one exposition line."""

    def __init__(self, line: str, number: int) -> None:
        self.line = line
        self.number = number
        self.pos = 0

    def fail(self, message: str, code: ErrorCode = ErrorCode.MALFORMED_JSON) -> NormalizeError:
        return NormalizeError(code, f"line {self.number}: {message}")

    def sample(self, default_ms: int | None) -> Sample:
        name: str | None = None
        if self.line[0] != "{":
            name = self.regex(_METRIC_NAME, "a metric name")
        labels: dict[str, str] = {}
        if self.peek() == "{":
            name = self.labels(labels, name)
        if name is None:
            raise self.fail("no metric name")
        fields = self.line[self.pos :].split()
        if not fields or self.line[self.pos] not in " \t":
            raise self.fail("expected whitespace and a value")
        if len(fields) > 2:
            raise self.fail("unexpected text after the timestamp (exemplars are not supported)")
        value, text = _parse_value(fields[0], f"line {self.number}: value")
        if len(fields) == 2:
            ts_ms = self.timestamp(fields[1])
        elif default_ms is not None:
            ts_ms = default_ms
        else:
            raise self.fail("sample has no timestamp", ErrorCode.MISSING_FIELD)
        return name, labels, value, text, ts_ms

    def peek(self) -> str:
        return self.line[self.pos] if self.pos < len(self.line) else ""

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t"):
            self.pos += 1

    def regex(self, pattern: re.Pattern[str], what: str) -> str:
        match = pattern.match(self.line, self.pos)
        if not match:
            raise self.fail(f"expected {what} at column {self.pos + 1}")
        self.pos = match.end()
        return match.group()

    def quoted(self) -> str:
        """A double-quoted string with `\\\\`, `\\"` and `\\n` escapes."""
        self.pos += 1  # opening quote
        out: list[str] = []
        while self.pos < len(self.line):
            char = self.line[self.pos]
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                escaped = self.line[self.pos : self.pos + 1]
                if escaped not in _ESCAPES:
                    raise self.fail(f"invalid escape \\{escaped} in a label value")
                out.append(_ESCAPES[escaped])
                self.pos += 1
            else:
                out.append(char)
        raise self.fail("unterminated quoted string")

    def labels(self, labels: dict[str, str], name: str | None) -> str | None:
        """`{a="x",b="y"}` into `labels`; returns the metric name (a quoted name may be inside)."""
        self.pos += 1  # {
        while True:
            self.skip_spaces()
            if self.peek() == "}":
                self.pos += 1
                return name
            quoted = self.peek() == '"'
            key = self.quoted() if quoted else self.regex(_LABEL_NAME, "a label name")
            self.skip_spaces()
            if self.peek() != "=":
                if not quoted or name is not None:
                    raise self.fail(f"expected '=' after label {key!r}")
                name = key  # Prometheus 3 quoted metric name
            else:
                self.pos += 1
                self.skip_spaces()
                if self.peek() != '"':
                    raise self.fail(f"label {key!r} needs a double-quoted value")
                if key in labels:
                    raise self.fail(f"duplicate label {key!r}")
                labels[key] = self.quoted()
            self.skip_spaces()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise self.fail("expected ',' or '}' in the label set")

    def timestamp(self, token: str) -> int:
        """Milliseconds (Prometheus text), or seconds with a fraction (OpenMetrics)."""
        try:
            if "_" in token:  # Python reads 1_000, Prometheus does not
                raise ValueError(token)
            if "." in token or "e" in token.lower():
                seconds = float(token)
                if not math.isfinite(seconds):
                    raise ValueError(token)
                millis = int(seconds * 1000)
            else:
                millis = int(token)
        except ValueError:
            raise self.fail(f"invalid timestamp {token!r}", ErrorCode.INVALID_VALUE) from None
        if not 0 <= millis <= MAX_TS_MS:
            raise self.fail(f"timestamp {token!r} is out of range", ErrorCode.INVALID_VALUE)
        return millis
