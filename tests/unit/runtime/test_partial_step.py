"""A crash that leaves only some of a step's state writes in Kafka (app/runtime/step_journal.py).

Each Faust table has its own changelog, written in the background, so a SIGKILL can keep any
subset of the last steps' changelog records. Here a step's writes are cut at random (by key,
and by table) at a sample of steps; the journal record of the step is applied again, and the
partition is read again from a committed offset at or before the step, skipping what the
journal record says the state holds (app/runtime/resends.py). The outputs must be exactly
those of the run without a crash: nothing lost, nothing changed, nothing new. Without the
journal the same cut loses or changes outputs (the check has teeth).
"""

from __future__ import annotations

import copy
import random
import sys
from dataclasses import dataclass, fields
from typing import Any

import orjson
import pytest

from app.model.events import Event
from app.pipeline import Pipeline, PipelineState
from app.runtime import held, step_journal
from app.runtime.batch import Batch
from app.runtime.resends import ResendGuard
from app.runtime.staged import StagedState
from app.settings import REPO_ROOT, Settings
from app.topics import entity_partition

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import chaos_order as chaos

TABLES = tuple(f.name for f in fields(PipelineState))
#: The partition of the generated stream where held events are released most often.
PARTITION = 1
#: A clock tick record after this many events (as workers write them,
#: app/runtime/partition_clock.py).
TICK_EVERY = 40


def records(settings: Settings) -> list[tuple[int, Event | None]]:
    """One partition's records as a worker reading a backlog gets them: (arrival ms, event or
    None for a clock tick), ending with ticks until every source is idle."""
    plan = chaos.raw_plan(
        chaos.generate(11, 1_767_225_600_000, 20.0, 3_000), chaos.TopicCatalog(settings, {}), 4
    )
    _, in_batches = chaos.interleaved(plan, settings, 150)
    out: list[tuple[int, Event | None]] = []
    for n, item in enumerate(in_batches):
        if entity_partition(item.key or "", settings.partitions) == PARTITION:
            out.append((n, Event.from_dict(item.value)))
            if len(out) % TICK_EVERY == 0:
                out.append((n, None))
    end = len(in_batches)
    step = settings.clock_tick_ms
    out += [(at, None) for at in range(end + step, end + settings.clock_idle_ms + 2 * step, step)]
    return out


@dataclass
class Done:
    """One processed record: its outputs and its staged writes per table."""

    outputs: list[Any]
    writes: dict[str, dict[str, Any]]


def run_step(pipeline: Pipeline, record: tuple[int, Event | None]) -> Done:
    """Process one record and apply its writes."""
    arrival, event = record
    batch = Batch(pipeline.state)
    if event is None:
        step = pipeline.tick(PARTITION, arrival, batch)
    else:
        step = pipeline.process(copy.deepcopy(event), PARTITION, batch, arrival)
    writes = {name: dict(batch.staged(PARTITION, name).pending) for name in TABLES}
    step.commit()
    return Done(step.outputs, {name: w for name, w in writes.items() if w})


def state_of(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    """A copy of every table (JSON round trip: what a changelog keeps)."""
    return orjson.loads(orjson.dumps({name: getattr(pipeline.state, name) for name in TABLES}))


def same_state(pipeline: Pipeline, tables: dict[str, dict[str, Any]]) -> bool:
    return all(dict(getattr(pipeline.state, name)) == tables[name] for name in TABLES)


def cut(tables: dict[str, dict[str, Any]], done: Done, kept: set[tuple[str, str]]) -> PipelineState:
    """`tables` with only the step's writes in `kept` ((table, key) pairs) applied."""
    state = {name: copy.deepcopy(tables[name]) for name in TABLES}
    for name, writes in done.writes.items():
        replica = StagedState(state[name])
        replica.pending = {k: copy.deepcopy(v) for k, v in writes.items() if (name, k) in kept}
        replica.commit()
    return PipelineState(**state)


def journal_of(done: Done, offset: int) -> dict[str, Any]:
    """The step's journal record as the agent writes it and Kafka returns it (JSON)."""
    staged = {}
    for name, writes in done.writes.items():
        staged[name] = StagedState({})
        staged[name].pending = dict(writes)
    record = step_journal.record(offset, step_journal.writes_of(staged), done.outputs)
    return orjson.loads(orjson.dumps(record))


def note(seen: dict[tuple[str, str], bytes], outputs: list[Any], changed: list[str]) -> None:
    for out in outputs:
        if chaos.wall_clock(out.topic, out.value):
            continue
        key = (out.topic, str(out.value.get("id")))
        value = orjson.dumps(out.value, option=orjson.OPT_SORT_KEYS)
        if seen.setdefault(key, value) != value:
            changed.append(f"{key} differs")


@pytest.fixture(scope="module")
def reference():
    """The crash-free run: state before each step, each step's outputs and writes."""
    settings = Settings.from_env({})
    recs = records(settings)
    pipeline = Pipeline(settings)
    before, steps = [], []
    for record in recs:
        before.append(state_of(pipeline))
        steps.append(run_step(pipeline, record))
    expected: dict[tuple[str, str], bytes] = {}
    problems: list[str] = []
    for done in steps:
        note(expected, done.outputs, problems)
    assert not problems
    return settings, recs, before, steps, expected


def crash_points(steps: list[Done]) -> list[int]:
    """Steps that release held events and write alert state (a hand-over across tables),
    and some plain steps, spread over the run."""
    handover = [
        n
        for n, done in enumerate(steps)
        if any(
            key.endswith(held.HELD_MARK) and isinstance(value, dict) and value.get("ev") is not None
            for key, value in done.writes.get("held", {}).items()
        )
        and "alerts" in done.writes
        and "groups" in done.writes
    ]
    plain = list(range(5, len(steps), max(1, len(steps) // 6)))
    return sorted(set(handover[:: max(1, len(handover) // 8)] + plain))


def cuts(done: Done, rng: random.Random) -> list[set[tuple[str, str]]]:
    """Which writes of a step reached Kafka: each table alone, each table missing, random
    halves of the keys."""
    pairs = {(name, key) for name, writes in done.writes.items() for key in writes}
    names = set(done.writes)
    out = [{p for p in pairs if p[0] == name} for name in names]
    out += [{p for p in pairs if p[0] != name} for name in names]
    out += [{p for p in sorted(pairs) if rng.random() < 0.5} for _ in range(2)]
    return out


def crash(reference, n: int, kept: set[tuple[str, str]], back: int, redo: bool) -> list[str]:
    """Cut step `n` to `kept`, (with `redo`) apply its journal record, read again from
    `n - back`: what differs from the run without the crash."""
    settings, recs, before, steps, expected = reference
    problems: list[str] = []
    seen: dict[tuple[str, str], bytes] = {}
    for done in steps[: n + 1]:  # outputs acknowledged before the crash
        note(seen, done.outputs, problems)
    state = cut(before[n], steps[n], kept)
    pipeline = Pipeline(settings, state)
    resends = ResendGuard()
    if redo:
        tables = {name: getattr(state, name) for name in TABLES}
        record = journal_of(steps[n], n)
        again = step_journal.redo(record, tables)
        resends.restore(PARTITION, record)
        note(seen, again, problems)
    for offset in range(max(0, n - back), len(recs)):
        if not resends.admit(PARTITION, offset):
            continue
        note(seen, run_step(pipeline, recs[offset]).outputs, problems)
        if offset > n and offset % 10 == 0 and same_state(pipeline, before[offset + 1]):
            for rest in steps[offset + 1 :]:  # the same state: the rest is the same too
                note(seen, rest.outputs, problems)
            break
    problems += [f"lost {k}" for k in sorted(expected.keys() - seen.keys())]
    problems += [f"unexpected {k}" for k in sorted(seen.keys() - expected.keys())]
    problems += [f"changed {k}" for k in expected.keys() & seen.keys() if expected[k] != seen[k]]
    return problems


def test_the_journal_makes_a_partly_written_step_whole(reference):
    steps = reference[3]
    points = crash_points(steps)
    assert len(points) >= 10
    assert sum({"held", "alerts", "groups"} <= set(steps[n].writes) for n in points) >= 3, (
        "too few hand-overs across tables in the sample"
    )
    rng = random.Random(5)
    for n in points:
        for kept in cuts(steps[n], rng):
            for back in (0, 3):
                problems = crash(reference, n, kept, back, redo=True)
                assert not problems, f"step {n}, from {n - back}: {problems[:5]}"


def test_without_the_journal_a_partly_written_step_loses_outputs(reference):
    steps = reference[3]
    rng = random.Random(5)
    broken = sum(
        bool(crash(reference, n, kept, 0, redo=False))
        for n in crash_points(steps)
        for kept in cuts(steps[n], rng)
    )
    assert broken > 0
