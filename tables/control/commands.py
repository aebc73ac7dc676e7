"""Control commands (silences, policy reloads) applied to state: pure, shared by the agent and
offline replay."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.model.events import format_time, parse_time
from tables.alerts.silences import parse_silence


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
    if kind == "policy.reload":
        if not isinstance(command.get("by"), str) or not command["by"]:
            raise ValueError("policy.reload: 'by' must be a non-empty string")
        return {}
    if kind == "audit.append":
        for field_name in ("who", "what", "why"):
            if not isinstance(command.get(field_name), str) or not command[field_name]:
                raise ValueError(f"audit.append: '{field_name}' must be a non-empty string")
        return {}
    raise ValueError(
        f"unknown control command {kind!r} "
        "(silence.create, silence.expire, policy.reload, audit.append)"
    )


def audit_entry(
    command: dict[str, Any], changes: dict[str, dict[str, Any]]
) -> tuple[str, str, str, dict[str, Any]]:
    """(who, what, why, details) of an applied command, for the audit trail."""
    kind = command["command"]
    if kind == "audit.append":
        details = command.get("details")
        return (
            command["who"],
            command["what"],
            command["why"],
            details if isinstance(details, dict) else {},
        )
    if kind == "policy.reload":
        return command["by"], "policy.reload", str(command.get("why") or "policy reload"), {}
    ((silence_id, silence),) = changes.items()
    if kind == "silence.create":
        why = silence.get("comment", "")
        return (
            silence.get("createdBy", "unknown"),
            "silence.create",
            why,
            {
                "id": silence_id,
                "matchers": silence["matchers"],
                "startsAt": silence["startsAt"],
                "endsAt": silence["endsAt"],
            },
        )
    return (
        silence.get("expiredBy", "unknown"),
        "silence.expire",
        str(command.get("why") or "expired"),
        {"id": silence_id, "endsAt": silence["endsAt"]},
    )
