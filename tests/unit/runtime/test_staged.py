"""Staged writes: read-your-writes, rollback of one event, and the partition mark that lets
the runtime rebuild a partition's timers without the stages seeing a partition."""

from __future__ import annotations

from types import SimpleNamespace

from app.runtime.batch import Batch
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


def test_a_batch_keeps_each_partitions_tables_in_the_order_first_staged():
    """`for_partition` and `tables_of` give one partition's staged tables (the order they
    were first staged in, which the journal records and commits follow); `view` builds a
    partition's bundle once per batch."""
    state = SimpleNamespace(a={}, b={}, c={}, UNOWNED=frozenset({"c"}))
    batch = Batch(state)
    b1, a0, a1, c1 = (batch.staged(p, t) for p, t in ((1, "b"), (0, "a"), (1, "a"), (1, "c")))
    assert batch.staged(1, "b") is b1
    assert batch.for_partition(1) == [b1, a1, c1] and batch.for_partition(0) == [a0]
    assert batch.tables_of(1) == {"b": b1, "a": a1, "c": c1} and batch.tables_of(2) == {}
    assert (a1.owner, c1.owner) == (1, None)
    built: list[int] = []

    def bundle(b: Batch, partition: int) -> tuple:
        built.append(partition)
        return (b.staged(partition, "a"), b.staged(partition, "b"))

    assert batch.view(1, bundle) is batch.view(1, bundle) == (a1, b1)
    assert batch.view(0, bundle)[0] is a0
    assert built == [1, 0]


def test_a_batch_rolls_back_only_the_failed_events_writes_in_every_table():
    """`begin_event` starts a unit of work in every staged table at once (one shared
    counter, not a mark per table): a rollback undoes the current event's writes, whether
    the table was staged before it, written by an earlier event too, or first staged by it."""
    state = SimpleNamespace(a={"k": 0}, b={}, c={})
    batch = Batch(state)
    batch.begin_event()  # event 1
    batch.staged(0, "a")["k"] = 1
    batch.staged(0, "b")["x"] = 1
    batch.begin_event()  # event 2 fails
    batch.staged(0, "a")["k"] = 2
    batch.staged(0, "a")["k"] = 3
    batch.staged(0, "c")["y"] = 2  # first staged by the failing event
    batch.rollback_event()
    a, b, c = (batch.staged(0, t) for t in ("a", "b", "c"))
    assert (a.get("k"), b.get("x"), c.get("y")) == (1, 1, None)
    batch.begin_event()  # event 3 fails without writing: event 1's writes stay
    batch.rollback_event()
    assert (a.get("k"), b.get("x")) == (1, 1)
    for staged in (a, b, c):
        staged.commit()
    assert state.a == {"k": 1} and state.b == {"x": 1} and state.c == {}
