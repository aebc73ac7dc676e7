"""Control commands (silences) applied to state: pure, shared by the agent and offline replay."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.events import format_time, parse_time
from tables.silences import parse_silence


def apply_command(command: Any, silences: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The silence writes one command makes: `{silence id: stored silence}`.

    Raises ValueError with a clear message for an unknown or invalid command.
    """
    if not isinstance(command, dict):
        raise ValueError("control command must be a JSON object")
    kind = command.get("command")
    if kind == "silence.create":
        silence = parse_silence(command.get("silence"))
        return {silence["id"]: silence}
    if kind == "silence.expire":
        silence_id = command.get("id")
        current = silences.get(silence_id) if isinstance(silence_id, str) else None
        if current is None:
            raise ValueError(f"silence.expire: no silence with id {silence_id!r}")
        try:
            at = parse_time(command.get("at"))
        except ValueError:
            raise ValueError("silence.expire: 'at' must be a timestamp") from None
        ends = min(current["ends_ms"], max(at, current["starts_ms"]))
        expired = {**current, "ends_ms": ends, "endsAt": format_time(ends)}
        expired["expiredBy"] = str(command.get("by") or "unknown")
        return {silence_id: expired}
    raise ValueError(f"unknown control command {kind!r} (silence.create, silence.expire)")
