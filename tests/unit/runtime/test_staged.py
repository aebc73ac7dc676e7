"""Staged writes: read-your-writes, rollback of one event, and the partition mark that lets
the runtime rebuild a partition's timers without the stages seeing a partition."""

from __future__ import annotations

from app.runtime.staged import StagedState, owned_by


def test_reads_see_staged_writes_and_rollback_undoes_one_event():
    base = {"a": {"n": 1}}
    staged = StagedState(base)
    staged.mark()
    staged["a"] = {"n": 2}
    assert staged.get("a") == {"n": 2} and base["a"] == {"n": 1}
    staged.rollback()
    assert staged.get("a") == {"n": 1}
    staged["b"] = {"n": 3}
    staged.delete("a")
    assert staged.commit() == 2
    assert base == {"b": {"n": 3}}


def test_an_owner_marks_what_it_writes_and_owned_by_finds_it():
    table: dict = {}
    for partition in (0, 1):
        staged = StagedState(table, owner=partition)
        staged[f"k{partition}"] = {"due": 5}
        staged[f"plain{partition}"] = 7  # not a record: nothing to mark
        staged.commit()
    assert table["k0"] == {"due": 5, "p": 0}
    assert [key for key, _ in owned_by(table.items(), 1)] == ["k1"]
    unowned = StagedState(table)
    unowned["k2"] = {"due": 6}
    unowned.commit()
    assert "p" not in table["k2"]
