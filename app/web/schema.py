"""What the web API accepts: the gate's request schema and the checks on names and headers.

Faust-free, so tests call it directly; every check raises `BadRequest` with the reason the API
answers (400, JSON `{"error": reason}`).

The gate's `POST /gate/{service}` body (every field optional; any other key is rejected, so a
misspelt field fails the CI job instead of being ignored):

| field | type |
|---|---|
| `commit_sha` | hex string, 7-64 characters |
| `branch` | 1-255 printable ASCII characters, no spaces |
| `artifact` | 1-512 printable ASCII characters, no spaces (an image reference) |
| `environment` | 1-32 letters, digits, `.`, `_`, `-`, starting with a letter or digit |
| `lines_changed`, `additions`, `deletions` | integer 0..10,000,000 |
| `files_changed`, `files_added`, `files_modified`, `files_removed` | integer 0..1,000,000 |
| `changes_count` | integer 0..1,000,000 |

Request bodies (gate, silences) are at most `MAX_BODY_BYTES`; larger ones are refused with 413.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from app.catalogue import SERVICE_NAME

MAX_BODY_BYTES = 64 * 1024
MAX_LINES = 10_000_000
MAX_FILES = 1_000_000

_HEX = re.compile(r"^[0-9a-fA-F]{7,64}$")
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
_CALLER = re.compile(r"^[\x20-\x7e]{1,128}$")


class BadRequest(ValueError):
    """A request the API refuses with 400 (or `status`), and why."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def _text(pattern: re.Pattern[str], limit: int, what: str) -> Any:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not pattern.match(value) or len(value) > limit:
            raise BadRequest(f"{name} must be {what}")
        return value

    return check


def _count(limit: int) -> Any:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise BadRequest(f"{name} must be an integer from 0 to {limit:,}")
        return value

    return check


#: Gate request field -> its check (returns the value or raises BadRequest).
GATE_FIELDS: dict[str, Any] = {
    "commit_sha": _text(_HEX, 64, "a hex commit SHA of 7 to 64 characters"),
    "branch": _text(_PRINTABLE, 255, "1-255 printable ASCII characters without spaces"),
    "artifact": _text(_PRINTABLE, 512, "1-512 printable ASCII characters without spaces"),
    "environment": _text(
        _ENVIRONMENT, 32, "1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"
    ),
    **{name: _count(MAX_LINES) for name in ("lines_changed", "additions", "deletions")},
    **{
        name: _count(MAX_FILES)
        for name in ("files_changed", "files_added", "files_modified", "files_removed")
    },
    "changes_count": _count(MAX_FILES),
}


def check_service(service: str) -> str:
    """The service name when it has the catalogue's syntax (app/catalogue.py SERVICE_NAME)."""
    if not SERVICE_NAME.match(service):
        raise BadRequest(
            "service name must be 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return service


def json_body(raw: bytes, *, allow_empty: bool = True) -> Any:
    """The parsed JSON of a request body of at most MAX_BODY_BYTES (None when empty)."""
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"request body larger than {MAX_BODY_BYTES} bytes", status=413)
    if not raw.strip():
        if allow_empty:
            return None
        raise BadRequest("request body must be JSON")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("request body must be JSON") from None


def gate_change(body: Any) -> dict[str, Any] | None:
    """The validated proposed change of a gate request (None: no body)."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    unknown = sorted(str(k) for k in body if k not in GATE_FIELDS)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise BadRequest(
            f"unknown field(s) {shown}{more}; the gate accepts " + ", ".join(GATE_FIELDS)
        )
    return {name: GATE_FIELDS[name](name, value) for name, value in body.items()}


def claimed_caller(header: str | None) -> str | None:
    """The `X-Vigil-Caller` header, kept on the audit record as `claimed_by` only (the
    identity is the token's principal): 1-128 printable ASCII characters, or absent."""
    if header is None:
        return None
    if not _CALLER.match(header):
        raise BadRequest("X-Vigil-Caller must be 1-128 printable ASCII characters")
    return header
