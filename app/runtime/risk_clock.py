"""The risk agent's clock, one per partition of `risk_signals`, and the partition's timers.

Signals reach a partition from every `vigil.events` partition (the producers), each in its own
order, so the order they interleave in differs from run to run. To give the same outputs
whatever it is, the risk stage runs on this clock, as the alert stage runs on the partition
clock (app/runtime/partition_clock.py):
- every producer sends heartbeats (`tick` at each `check_interval_ms` boundary its partition
  clock crosses, `clock` on each of its worker's clock ticks) saying its clock reached t: it
  has sent every signal older than that. The clock is the lowest of them (with idle
  declarations: a producer whose every source is idle stops holding it);
- the stage holds each signal until the clock passes it and is told to run up to the clock.
Without producers (a test feeding one ordered stream) every signal moves the clock to its time.

The clock of a partition lives in the runtime's `risk-clock` table (the `clocks` argument; a
test may keep it in the stage's own table) under `~wm|<partition>` (`{t: wm, wm, clock, src}`:
the newest time reported, the clock, each producer's newest clock and idle flag); the
stage's timer schedule of a partition is rebuilt from the partition's records (`owned_by`).
The stage sees neither: it gets signals and "run up to t" calls (`ClockedStage`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from app.model.events import event_id
from app.model.outputs import Output
from app.runtime.due_heap import DueHeap
from app.runtime.staged import StagedState, owned_by

#: Heartbeat kinds: `tick` at each risk boundary a partition clock crosses (event time, part
#: of the replayable output), `clock` on every clock tick of a worker (its value follows when
#: the worker ticked: not replayable, consumers comparing runs skip it).
HEARTBEAT_KINDS = frozenset({"tick", "clock"})


def tick_signal(
    partition_hint: str, time_ms: int, producer: int | None = None, kind: str = "tick"
) -> dict[str, Any]:
    """A heartbeat from the `vigil.events` partition `producer`: its clock reached `time_ms`,
    so every signal it sends from now on is newer. Sent to each partition of the signal
    topic."""
    signal: dict[str, Any] = {
        "id": event_id("risk_tick", partition_hint, time_ms),
        "kind": kind,
        "service": None,
        "time_ms": time_ms,
    }
    if producer is not None:
        signal["from"] = producer
    return signal


def is_heartbeat(signal: Mapping[str, Any]) -> bool:
    """True for a heartbeat (`tick` or `clock`), not a signal about a subject."""
    return signal.get("kind") in HEARTBEAT_KINDS


def watermark_key(partition: int) -> str:
    """The state key of a partition's clock."""
    return f"~wm|{partition}"


class ClockedStage(Protocol):
    """What the clock drives: a stage that holds signals until told to run up to a time."""

    def receive(
        self, signal: Mapping[str, Any], state: StagedState, schedule: Any, clock: int | None
    ) -> list[Output]:
        """Take in one signal; `clock`: the clock already (None: not started)."""
        ...

    def run_until(self, clock: int, state: StagedState, schedule: Any) -> list[Output]:
        """Run what is due up to `clock`."""
        ...

    def finish(self, state: StagedState, schedule: Any, newest: int | None) -> list[Output]:
        """End of input: run up to `newest - 1`, then apply everything still held."""
        ...

    def schedule_of(self, items: Iterable[tuple[str, Any]]) -> DueHeap:
        """The timer schedule of these `(key, value)` records."""
        ...


class RiskClock:
    """Per-partition clocks from the producers' heartbeats, driving a `ClockedStage`."""

    def __init__(self, stage: ClockedStage, producers: int | Iterable[int] | None = None):
        self.stage = stage
        #: The `vigil.events` partitions whose heartbeats make the clock (a count: all of
        #: them; None: every signal moves the clock to its own time, for a single ordered
        #: producer such as a test).
        if isinstance(producers, int):
            producers = range(producers)
        self.producers = None if producers is None else tuple(str(p) for p in producers)
        self._schedules: dict[int, DueHeap] = {}
        #: ticks: heartbeats taken.
        self.stats: Counter[str] = Counter()

    def on_signal(
        self,
        signal: Mapping[str, Any],
        partition: int,
        state: StagedState,
        clocks: StagedState | None = None,
    ) -> list[Output]:
        """Take in one risk signal or heartbeat read from `partition`, then run the stage up
        to the partition clock. The clock records live in `clocks` (the runtime's own table;
        by default the stage's `state`)."""
        outputs: list[Output] = []
        schedule = self.schedule(partition, state)
        clock = self._advance(signal, partition, state if clocks is None else clocks)
        if is_heartbeat(signal):
            self.stats["ticks"] += 1
        else:
            outputs += self.stage.receive(signal, state, schedule, clock)
        if clock is not None:
            outputs += self.stage.run_until(clock, state, schedule)
        return outputs

    def on_tick(
        self,
        now_ms: int,
        state: StagedState,
        partition: int | None = None,
        clocks: StagedState | None = None,
    ) -> list[Output]:
        """Move the clock of `partition` (None: of every partition with a schedule) to
        `now_ms - 1` (event time), whatever the producers reported, and run what is due.

        Faust writes tables only inside a stream event: the risk agent moves its clocks with
        heartbeat signals (`on_signal`); this is for tests and tools."""
        outputs: list[Output] = []
        clocks = state if clocks is None else clocks
        partitions = sorted(self._schedules) if partition is None else [partition]
        for number in partitions:
            schedule = self.schedule(number, state)
            key = watermark_key(number)
            record = dict(clocks.get(key) or {"t": "wm", "wm": None})
            clock = record.get("clock", record.get("wm"))
            clock = now_ms - 1 if clock is None else max(clock, now_ms - 1)
            newest = record.get("wm")
            record.update(clock=clock, wm=now_ms if newest is None else max(newest, now_ms))
            clocks[key] = record
            outputs += self.stage.run_until(clock, state, schedule)
        return outputs

    def flush(
        self, state: StagedState, partition: int, clocks: StagedState | None = None
    ) -> list[Output]:
        """End of input (offline): every producer is done, so the stage runs up to the newest
        time reported, then applies what it still holds."""
        schedule = self.schedule(partition, state)
        clocks = state if clocks is None else clocks
        newest = (clocks.get(watermark_key(partition)) or {}).get("wm")
        return self.stage.finish(state, schedule, newest)

    def schedule(self, partition: int, state: StagedState) -> DueHeap:
        """The timer schedule of a partition, rebuilt from the table (with the writes staged
        so far) when first needed."""
        schedule = self._schedules.get(partition)
        if schedule is None:
            schedule = self.stage.schedule_of(owned_by(state.items(), partition))
            self._schedules[partition] = schedule
        return schedule

    def forget_schedules(self) -> None:
        """Drop the in-memory schedules (after a rebalance or a failed send)."""
        self._schedules.clear()

    def _advance(
        self, signal: Mapping[str, Any], partition: int, clocks: StagedState
    ) -> int | None:
        """The partition clock after this signal (None: not started). With producers, only
        their heartbeats move it: a producer's entry is the newest clock it reported and
        whether it declared itself idle (every source of its partition idle: it has nothing
        to send). The clock waits until every producer was heard from, then is one
        millisecond before the lowest clock among the producers not idle (the newest clock
        when all are): they have all sent every signal older than that. A producer that is
        merely slow (a backlog) holds it; only a declaration makes it stop. Without
        producers, every signal moves the clock to just before its own time."""
        key = watermark_key(partition)
        record = clocks.get(key)
        record = dict(record) if record else {"t": "wm", "wm": None}
        before = record.get("clock", record.get("wm"))
        time_ms = int(signal["time_ms"])
        aligned: int | None = None
        if self.producers is None:
            aligned = time_ms
        elif is_heartbeat(signal) and signal.get("from") is not None:
            sources = dict(record.get("src") or {})
            name = str(signal["from"])
            previous = sources.get(name, [time_ms, False])[0]
            sources[name] = [max(previous, time_ms), bool(signal.get("idle"))]
            record["src"] = sources
            if all(name in sources for name in self.producers):
                active = [at for at, idle in sources.values() if not idle]
                aligned = min(active) if active else max(at for at, _ in sources.values())
        if aligned is not None or is_heartbeat(signal):  # the newest time reported
            newest = record.get("wm")
            record["wm"] = time_ms if newest is None else max(newest, time_ms)
        clock = before
        if aligned is not None and (clock is None or aligned - 1 > clock):
            clock = aligned - 1
        record["clock"] = clock
        clocks[key] = record
        return clock
