"""The agents' step journal (app/runtime/journal.py, app/runtime/step_journal.py) without Kafka."""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import orjson
import pytest

from app.model.outputs import Output
from app.runtime import changelog_writes, step_journal
from app.runtime.journal import Journal
from app.runtime.staged import StagedState


def writes(**tables: dict[str, Any]) -> step_journal.Writes:
    staged = {}
    for name, changes in tables.items():
        staged[name] = StagedState({"gone": 1})
        for key, value in changes.items():
            if value is step_journal.DELETED:
                staged[name].delete(key)
            else:
                staged[name][key] = value
    return step_journal.writes_of(staged)


def test_a_record_applies_values_and_deletes_and_returns_the_outputs():
    out = Output("alerts", "fp", {"id": "a1"})
    changes = writes(alerts={"k": {"n": 1}, "gone": step_journal.DELETED})
    record = step_journal.record(7, changes, [out])
    record = orjson.loads(orjson.dumps(record))  # as Kafka returns it
    tables: dict[str, dict[str, Any]] = {"alerts": {"k": {"n": 0}, "gone": {"x": 1}}}
    assert step_journal.redo(record, tables) == [out]
    assert tables == {"alerts": {"k": {"n": 1}}}
    assert step_journal.redo(record, tables) == [out] and tables == {"alerts": {"k": {"n": 1}}}


def test_a_record_for_an_unknown_table_is_an_error():
    record = step_journal.record(1, writes(nope={"k": 1}), [])
    with pytest.raises(KeyError, match="nope"):
        step_journal.redo(record, {})


def test_later_writes_of_a_key_win_when_steps_merge():
    first = writes(a={"k": 1, "x": 1})
    second = writes(a={"k": step_journal.DELETED}, b={"y": 2})
    assert step_journal.merged([first, second]) == {
        "a": {"k": step_journal.DELETED, "x": 1},
        "b": {"y": 2},
    }


def test_unconfirmed_steps_ride_along_until_kafka_has_them():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        table: dict[str, Any] = {}
        journal = Journal(table, {"a": {}})
        journal.write(0, 10, writes(a={"k": 1}), [])
        first = loop.create_future()
        journal.applied([first])  # step 10's changelog record is not confirmed yet
        journal.write(0, 11, writes(a={"j": 2}), [])
        record = orjson.loads(table["0"])
        assert record["w"] == {"a": {"k": 1, "j": 2}} and record["o"] == 11
        journal.applied([loop.create_future()])
        first.set_result(None)  # step 10 is in Kafka now; step 11 is not
        journal.write(0, 12, writes(a={"m": 3}), [])
        assert orjson.loads(table["0"])["w"] == {"a": {"j": 2, "m": 3}}
        failed = loop.create_future()
        failed.set_exception(RuntimeError("changelog send failed"))
        journal.applied([failed])
        with pytest.raises(RuntimeError, match="changelog send failed"):
            journal.write(0, 13, writes(a={"z": 1}), [])

    asyncio.run(scenario())


def test_recovery_runs_once_per_assignment():
    tables: dict[str, dict[str, Any]] = {"a": {"k": 0}}
    out = Output("alerts", None, {"id": "x"})
    record = step_journal.record(5, writes(a={"k": 9}), [out])
    journal = Journal({"3": orjson.dumps(record)}, tables)
    assert journal.needs_recovery(3)
    assert journal.recover(3) == [out] and tables["a"]["k"] == 9
    assert not journal.needs_recovery(3)
    assert journal.recover(4) == [] and not journal.needs_recovery(4)
    journal.reset()
    assert journal.needs_recovery(3)


def test_redo_applies_the_last_step_tells_the_agent_and_sends_its_outputs_again(monkeypatch):
    tables: dict[str, dict[str, Any]] = {"a": {"k": 0}}
    out = Output("alerts", None, {"id": "x"})
    record = step_journal.record(5, writes(a={"k": 9}), [out])
    journal = Journal({"3": orjson.dumps(record)}, tables, name="process")
    sent: list[list[Output]] = []
    changed: list[str] = []

    async def send_and_confirm(outputs):
        assert tables["a"]["k"] == 9 and changed  # applied, and the agent told, first
        sent.append(list(outputs))

    monkeypatch.setattr("app.runtime.journal.send_and_confirm", send_and_confirm)
    asyncio.run(journal.redo(3, lambda: changed.append("3")))
    asyncio.run(journal.redo(4, lambda: changed.append("4")))  # nothing journaled there
    assert sent == [[out]] and changed == ["3"]
    assert not journal.needs_recovery(3) and not journal.needs_recovery(4)


def test_changelog_records_are_tracked_per_task():
    async def writer(name: str) -> list[Any]:
        changelog_writes.start()
        send = changelog_writes.track(lambda value: f"{name}:{value}")
        for n in range(3):
            send(n)
            await asyncio.sleep(0)
        return changelog_writes.take()

    async def scenario() -> tuple[list[Any], list[Any]]:
        return tuple(await asyncio.gather(writer("a"), writer("b")))

    a, b = asyncio.run(scenario())
    assert a == ["a:0", "a:1", "a:2"] and b == ["b:0", "b:1", "b:2"]
    assert changelog_writes.take() == []  # this (untracked) context has none


def test_a_step_too_large_for_kafka_is_not_journaled(monkeypatch):
    monkeypatch.setattr(step_journal, "MAX_RECORD_BYTES", 100)
    table: dict[str, Any] = {}
    journal = Journal(table, {"a": {}})
    journal.write(2, 40, writes(a={"k": "x" * 200}), [])
    assert journal.oversize == 1
    assert orjson.loads(table["2"]) == {"o": 40, "w": {}, "d": {}, "out": [], "src": {}}


def test_large_records_are_stored_compressed_and_read_back():
    big = writes(alerts={f"k{n}": {"pend": ["the same finding again"] * 500} for n in range(40)})
    record = step_journal.record(9, big, [])
    data = step_journal.encode(record)
    assert data[:1] == b"Z" and len(data) * 10 < len(orjson.dumps(record))
    assert step_journal.decode(data) == orjson.loads(orjson.dumps(record))
    small = step_journal.record(9, writes(a={"k": 1}), [])
    assert step_journal.decode(step_journal.encode(small)) == small


def test_compressed_records_are_plain_zlib_streams_both_ways():
    """ISA-L writes the standard zlib format: the standard library reads what is written, and
    a record compressed by the standard library (as before ISA-L) is read back."""
    big = writes(alerts={f"k{n}": {"pend": ["the same finding again"] * 500} for n in range(40)})
    record = step_journal.record(9, big, [])
    expected = orjson.loads(orjson.dumps(record))
    data = step_journal.encode(record)
    assert orjson.loads(zlib.decompress(data[1:])) == expected
    older = b"Z" + zlib.compress(orjson.dumps(record), 1)
    assert step_journal.decode(older) == expected
