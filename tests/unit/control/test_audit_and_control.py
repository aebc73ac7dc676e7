"""The audit hash chain detects tampering; control commands validate and describe themselves."""

from __future__ import annotations

import pytest

from tables.control.audit import append, verify_chain
from tables.control.commands import apply_command, audit_entry

SILENCE = {
    "matchers": ['alertname="Write below root"'],
    "startsAt": "2026-01-01T00:00:00Z",
    "endsAt": "2026-01-01T02:00:00Z",
    "createdBy": "alice",
    "comment": "maintenance window",
}


def chain(n: int) -> list[dict]:
    records, head = [], None
    for i in range(n):
        head = append(head, "alice", "silence.create", f"2026-01-01T00:0{i}:00Z", f"reason {i}")
        records.append(head)
    return records


def test_an_untouched_chain_verifies():
    assert verify_chain(chain(5)) == (True, 5, "")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda rs: rs[2].update(why="nothing to see"),
        lambda rs: rs.pop(1),
        lambda rs: rs.insert(3, rs.pop(2)),
    ],
    ids=["altered", "dropped", "reordered"],
)
def test_tampering_breaks_the_chain(tamper):
    records = chain(5)
    tamper(records)
    intact, checked, problem = verify_chain(records)
    assert not intact and checked < 5 and problem


def test_silence_create_and_expire_commands():
    ((silence_id, silence),) = apply_command(
        {"command": "silence.create", "silence": SILENCE}, {}
    ).items()
    who, what, why, details = audit_entry(
        {"command": "silence.create", "silence": SILENCE}, {silence_id: silence}
    )
    assert (who, what, why) == ("alice", "silence.create", "maintenance window")
    assert details["id"] == silence_id
    expire = {
        "command": "silence.expire",
        "id": silence_id,
        "at": "2026-01-01T00:30:00Z",
        "by": "bob",
    }
    changes = apply_command(expire, {silence_id: silence})
    assert changes[silence_id]["endsAt"] == "2026-01-01T00:30:00.000Z"
    assert audit_entry(expire, changes)[:2] == ("bob", "silence.expire")


@pytest.mark.parametrize(
    "command",
    [
        None,
        {"command": "reboot"},
        {"command": "silence.create", "silence": {**SILENCE, "matchers": []}},
        {"command": "silence.expire", "id": "missing", "at": "2026-01-01T00:00:00Z"},
        {"command": "audit.append", "who": "", "what": "x", "why": "y"},
    ],
)
def test_invalid_commands_are_refused_with_a_reason(command):
    with pytest.raises(ValueError):
        apply_command(command, {})
