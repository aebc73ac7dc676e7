"""Fluent Bit container log records after its Kubernetes filter.

A record is the plain JSON map (as Fluent Bit's Kafka output sends it, with the event time in
`@timestamp`) or Fluent Bit's event form, `[TIMESTAMP, MESSAGE]` before v2.1 and
`[[TIMESTAMP, METADATA], MESSAGE]` since, TIMESTAMP being seconds as a number (Fluent Bit docs,
"Key concepts: Event format"). The Kubernetes filter adds `kubernetes{pod_name, namespace_name,
container_name, host, labels, ...}`; the docker/CRI parsers give `log`, `stream` and `time`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson

from app.model.events import MAX_TS_MS, Event, event_id, parse_time
from app.sources.base import check_time_range, optional, require_object
from app.sources.errors import ErrorCode, NormalizeError

MAX_LOG_CHARS = 2048
MAX_LABELS = 16
#: Pod labels that change on every rollout and only add noise.
NOISY_LABELS = frozenset(
    {"pod-template-hash", "controller-revision-hash", "pod-template-generation"}
)
#: Kubernetes labels naming the application, in order of preference.
APP_LABELS = ("app.kubernetes.io/name", "app", "k8s-app")
#: Record fields holding the event time, after the Fluent Bit event timestamp.
TIME_FIELDS = ("@timestamp", "time", "timestamp")
LEVEL_FIELDS = ("level", "severity", "log_level", "loglevel", "levelname", "lvl")
STATUS_FIELDS = ("status", "status_code", "http_status", "response_code", "code")
METHOD_FIELDS = ("method", "http_method", "request_method")
PATH_FIELDS = ("path", "http_path", "request_path", "uri", "url")

#: Level words as written by common loggers -> one canonical name.
LEVELS: dict[str, str] = {
    "fatal": "fatal",
    "panic": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "alert": "fatal",
    "crit": "critical",
    "critical": "critical",
    "err": "error",
    "error": "error",
    "warn": "warn",
    "warning": "warn",
    "notice": "info",
    "info": "info",
    "informational": "info",
    "debug": "debug",
    "trace": "trace",
}
#: Numeric levels of bunyan/pino JSON loggers.
NUMERIC_LEVELS: dict[int, str] = {
    10: "trace",
    20: "debug",
    30: "info",
    40: "warn",
    50: "error",
    60: "fatal",
}
#: Levels that raise a log line from `info` to `low`.
ERROR_LEVELS = frozenset({"error", "critical", "fatal"})

_LEVEL_KV = re.compile(r"(?i)\b(?:level|lvl|severity)\s*[=:]\s*\"?([a-z]+)")
_LEVEL_WORD = re.compile(
    r"\b(FATAL|PANIC|CRITICAL|CRIT|ERROR|ERR|WARNING|WARN|NOTICE|INFO|DEBUG|TRACE)\b"
)
#: Apache/nginx common and combined log format (the request part, status and size).
_ACCESS_LOG = re.compile(
    r'^\S+ \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>\S+)[^"]*" (?P<status>\d{3})\b'
)
_HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


class FluentBitAdapter:
    """One `log` event per Fluent Bit record enriched by the Kubernetes filter."""

    name = "fluentbit"
    family = "logs"

    def matches(self, doc: Any) -> bool:
        if isinstance(doc, list) and len(doc) == 2:
            doc = doc[1]
        return isinstance(doc, dict) and "kubernetes" in doc

    def normalize(self, doc: Any, raw: bytes) -> list[Event]:
        header_ts, record = _unwrap(doc)
        record = require_object(record, "Fluent Bit record")
        k8s = optional(record, "kubernetes", dict)
        if k8s is None:
            raise NormalizeError(ErrorCode.MISSING_FIELD, "required field 'kubernetes' is missing")
        namespace = optional(k8s, "namespace_name", str)
        pod = optional(k8s, "pod_name", str)
        container = optional(k8s, "container_name", str)
        labels = optional(k8s, "labels", dict, {})
        message = optional(record, "log", str)
        if message is None:
            message = optional(record, "message", str, "")
        parsed = _json_object(message)
        access = _ACCESS_LOG.match(message)
        ts_ms, time_value = _record_time(record, header_ts, access)
        entity = _entity(labels, container, namespace, pod)
        http_status = _http_status(record, parsed, access)
        level = _level(record, parsed, message)
        attributes: dict[str, Any] = {
            "namespace": namespace,
            "pod": pod,
            "container": container,
            "node": optional(k8s, "host", str),
            "labels": _compact_labels(labels),
            "stream": optional(record, "stream", str),
            "log": message.rstrip("\n")[:MAX_LOG_CHARS],
            "level": level,
            "http_status": http_status,
            "http_method": _http_method(record, parsed, access),
            "http_path": _http_path(record, parsed, access),
        }
        severity = "low" if level in ERROR_LEVELS or (http_status or 0) >= 500 else "info"
        identity = (namespace, pod, container, k8s.get("docker_id"), attributes["stream"])
        return [
            Event(
                id=event_id(self.name, *map(str, identity), str(time_value), message),
                source=self.name,
                type="log",
                ts_ms=ts_ms,
                entity=entity,
                severity=severity,
                attributes=attributes,
            )
        ]


def _unwrap(doc: Any) -> tuple[Any, Any]:
    """Split `[TIMESTAMP, MESSAGE]` / `[[TIMESTAMP, METADATA], MESSAGE]`; a map has no header."""
    if not isinstance(doc, list):
        return None, doc
    if len(doc) != 2:
        raise NormalizeError(ErrorCode.WRONG_TYPE, "a Fluent Bit event must be [header, record]")
    header, record = doc
    if isinstance(header, list):
        if len(header) != 2 or not isinstance(header[1], dict):
            raise NormalizeError(ErrorCode.WRONG_TYPE, "event header must be [TIMESTAMP, METADATA]")
        header = header[0]
    if isinstance(header, bool) or not isinstance(header, int | float):
        raise NormalizeError(ErrorCode.WRONG_TYPE, "event TIMESTAMP must be a number of seconds")
    if not 0 <= header <= MAX_TS_MS / 1000:  # also NaN; 1e308 * 1000 would overflow int()
        raise NormalizeError(ErrorCode.INVALID_VALUE, f"event TIMESTAMP {header!r} is invalid")
    return header, record


def _record_time(
    record: dict[str, Any], header_ts: float | None, access: re.Match[str] | None
) -> tuple[int, Any]:
    """Fluent Bit's event time, else the record's time field, else the access log's own time."""
    if header_ts is not None:
        return check_time_range(int(header_ts * 1000), "TIMESTAMP"), header_ts
    for path in TIME_FIELDS:
        value = record.get(path)
        if value is None:
            continue
        try:
            return check_time_range(parse_time(value), path), value
        except ValueError:
            raise NormalizeError(
                ErrorCode.INVALID_VALUE, f"'{path}' is not a timestamp: {value!r}"
            ) from None
    if access is not None:
        try:
            stamp = datetime.strptime(access["time"], "%d/%b/%Y:%H:%M:%S %z")
        except ValueError:
            raise NormalizeError(
                ErrorCode.INVALID_VALUE, f"access log time {access['time']!r} is invalid"
            ) from None
        return int(stamp.timestamp() * 1000), access["time"]
    raise NormalizeError(ErrorCode.MISSING_FIELD, "required field 'time' is missing")


def _entity(labels: dict[str, Any], container: str | None, namespace: str | None, pod: Any) -> str:
    """`service:` from the app labels or the container name, else `pod:<namespace>/<pod>`."""
    for key in APP_LABELS:
        value = labels.get(key)
        if isinstance(value, str) and value:
            return f"service:{value}"
    if container:
        return f"service:{container}"
    if pod:
        return f"pod:{namespace or '_'}/{pod}"
    raise NormalizeError(ErrorCode.MISSING_FIELD, "record names no pod or container")


def _compact_labels(labels: dict[str, Any]) -> dict[str, str]:
    """Pod labels without rollout hashes, string values only, at most MAX_LABELS."""
    kept = {
        key: value[:128]
        for key, value in sorted(labels.items())
        if isinstance(value, str) and key not in NOISY_LABELS
    }
    return dict(list(kept.items())[:MAX_LABELS])


def _json_object(message: str) -> dict[str, Any]:
    """The log line parsed as a JSON object, or {} when it is not one."""
    text = message.strip()
    if not text.startswith("{"):
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _first(sources: tuple[dict[str, Any], ...], names: tuple[str, ...]) -> Any:
    for source in sources:
        for name in names:
            value = source.get(name)
            if value is not None and not isinstance(value, dict | list):
                return value
    return None


def _level(record: dict[str, Any], parsed: dict[str, Any], message: str) -> str | None:
    """A JSON log's level field, else `level=...` or a level word in the text."""
    value = _first((parsed, record), LEVEL_FIELDS)
    if isinstance(value, str) and value.lower() in LEVELS:
        return LEVELS[value.lower()]
    if isinstance(value, int) and value in NUMERIC_LEVELS:
        return NUMERIC_LEVELS[value]
    head = message[:MAX_LOG_CHARS]
    match = _LEVEL_KV.search(head)
    if match and match[1].lower() in LEVELS:
        return LEVELS[match[1].lower()]
    match = _LEVEL_WORD.search(head)
    return LEVELS[match[1].lower()] if match else None


def _http_status(
    record: dict[str, Any], parsed: dict[str, Any], access: re.Match[str] | None
) -> int | None:
    """An HTTP status (100-599) from the access log line or JSON fields."""
    if access is not None:
        return int(access["status"])
    value = _first((parsed, record), STATUS_FIELDS)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 3:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _http_method(
    record: dict[str, Any], parsed: dict[str, Any], access: re.Match[str] | None
) -> str | None:
    value = access["method"] if access else _first((parsed, record), METHOD_FIELDS)
    if isinstance(value, str) and value.upper() in _HTTP_METHODS:
        return value.upper()
    return None


def _http_path(
    record: dict[str, Any], parsed: dict[str, Any], access: re.Match[str] | None
) -> str | None:
    """The request path without its query string (queries may carry tokens)."""
    value = access["path"] if access else _first((parsed, record), PATH_FIELDS)
    if not isinstance(value, str) or not value:
        return None
    return value.split("?", 1)[0][:512]
