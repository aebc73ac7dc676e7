"""Why a raw record could not become canonical events: machine-readable codes and one exception."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """The `error_code` of a dead-letter record. Stable: dashboards and alerts key on them."""

    TOO_LARGE = "too_large"  # record over the configured size limit
    INVALID_UTF8 = "invalid_utf8"  # bytes are not UTF-8
    BINARY = "binary"  # UTF-8 but holds a NUL byte: binary data, neither JSON nor text
    MALFORMED_JSON = "malformed_json"  # not parseable as JSON (or the source's text format)
    TOO_DEEP = "too_deep"  # nesting deeper than the configured limit
    UNKNOWN_FORMAT = "unknown_format"  # no adapter recognises the record
    MISSING_FIELD = "missing_field"  # a field the format requires is absent
    WRONG_TYPE = "wrong_type"  # a field has the wrong JSON type
    INVALID_VALUE = "invalid_value"  # a field has an impossible value (e.g. a bad timestamp)
    EMPTY = "empty"  # the record holds nothing to normalize
    FUTURE_TIMESTAMP = "future_timestamp"  # event time too far ahead of the wall clock
    INTERNAL = "internal_error"  # an adapter bug; the record is kept for replay after a fix


class NormalizeError(Exception):
    """A raw record that cannot be normalized. Carries an ErrorCode and a human message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"NormalizeError({self.code.value!r}, {self.message!r})"
