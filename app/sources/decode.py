"""Raw bytes to a decoded document, with the limits that keep a worker safe from hostile input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.sources.errors import ErrorCode, NormalizeError


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Input limits. `max_bytes`: largest record accepted; `max_depth`: deepest nesting."""

    max_bytes: int = 1_048_576
    max_depth: int = 64


def decode_record(raw: bytes, limits: DecodeLimits, allow_text: bool = False) -> Any:
    """Decode one raw record: size check, UTF-8, no NUL byte, JSON, nesting depth.

    With `allow_text`, a record that is valid UTF-8 but not JSON is returned as a `str` (for
    text formats such as the Prometheus exposition format) instead of failing.
    """
    if len(raw) > limits.max_bytes:
        raise too_large(len(raw), limits.max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NormalizeError(
            ErrorCode.INVALID_UTF8, f"record is not UTF-8 (byte {exc.start})"
        ) from None
    nul = raw.find(b"\x00")
    if nul >= 0:  # never valid JSON, and no text format either
        raise NormalizeError(
            ErrorCode.BINARY, f"record holds a NUL byte (byte {nul}): binary data, not JSON or text"
        )
    if not text.strip():
        raise NormalizeError(ErrorCode.EMPTY, "record is empty")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = str(exc).lower()
        if "depth limit" in message or "recursion" in message:  # orjson stops at 1024 levels
            raise NormalizeError(
                ErrorCode.TOO_DEEP, f"nesting deeper than {limits.max_depth} levels"
            ) from None
        if allow_text:
            return text
        raise NormalizeError(ErrorCode.MALFORMED_JSON, f"invalid JSON: {exc}") from None
    if (
        _brackets(raw) > limits.max_depth
        and nesting_depth(doc, limits.max_depth) > limits.max_depth
    ):
        raise NormalizeError(ErrorCode.TOO_DEEP, f"nesting deeper than {limits.max_depth} levels")
    return doc


def too_large(size: int, limit: int) -> NormalizeError:
    """The TOO_LARGE error for a record of `size` bytes (also raised by the file reader)."""
    return NormalizeError(ErrorCode.TOO_LARGE, f"record is {size} bytes, over the {limit} limit")


def _brackets(raw: bytes) -> int:
    """How many `{` and `[` the record holds: at least its nesting depth (each array or object
    opens with one; strings may hold more), so a record with few needs no walk."""
    return raw.count(b"{") + raw.count(b"[")


def nesting_depth(doc: Any, stop_after: int) -> int:
    """Depth of nested arrays/objects in `doc`; stops counting once past `stop_after`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > stop_after:
                return deepest
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return deepest
