"""The event-time clock of one `vigil.events` partition: what alert timers and risk heartbeats
run on.

A partition carries events of several sources (Falco, metrics, CloudTrail, ...) that reach it at
their own paces: a worker reading a backlog reads one raw topic's batch, then the next, so one
source can run minutes of event time ahead of another. A clock at the newest event time seen
would let alert timers fire before the lagging sources' events arrive, and the notifications
would then depend on how the raw topics interleaved. The partition clock is instead the *lowest*
watermark among the sources still sending (Flink's watermark alignment over input splits):
everything up to the clock has arrived from every active source, so the alert stage, which holds
inputs newer than its clock in state and applies them in event-time order, gives the same
notifications for any interleaving of the sources.

A source that goes quiet must not hold the clock for ever (Terraform plans may come once a
day). A source is *idle*, and left out, when nothing of it reached the partition for `idle_ms`
of processing time, measured with the Kafka timestamps ingest gave the `vigil.events` records
(their `arrival`): a property of the topic's records, so reading the partition again after a
crash decides exactly as the first time. Clock ticks (`tick_value`), written to every partition
of `vigil.events` every few seconds, let a partition notice idleness when nothing else arrives.
Because ticks keep coming while any worker runs, a partition that got nothing at all for longer
than `idle_ms` was paused as a whole (every worker down or restarting): such a pause is charged
to no source, each one gets a fresh idle time from the first record after it.

Arrival gaps alone cannot tell an idle source from a busy one read slowly: a worker working
through a backlog (or paused for a while) leaves seconds between one source's records on a
partition while that source still has hours of records to send, and a clock that took it for
idle would move past events still to come. So ticks also carry the ingest side's *progress*
(`tick_value(..., progress)`): for every raw partition the sending worker reads, the newest
event time it has sent (`W`, its raw partition watermark: raw partitions are read in order, so
nothing it sends later is older) and whether records are still waiting in it (not read to its
end). A source with records waiting is never idle, however long its silence on this partition;
its watermark here is at least the lowest `W` of its raw partitions (Flink broadcasts source
watermarks to every downstream partition the same way), so a source busy sending to other
partitions does not hold this one back either. The last report of each raw partition stands
until the next one (a worker that took a partition over and has not read it yet reports
nothing, and the partition still counts as waiting); once read to its end, a source is idle
after `idle_ms` without records, as before.

Offline (`vigil replay --offline`, no arrival times) events are processed in event-time order
and the clock simply follows the newest event time. Either way the clock stays one millisecond
behind (more events of the same millisecond may come), so events with equal times are all in
before a timer at that time fires, whatever order they came in.

A source is a raw topic (an event's `origin`; offline, the event's `source`). When a partition
starts, the clock waits for every raw topic to be heard from, or for the idle time to pass: a
topic that has not sent yet could bring older events than those seen.

State: one record per partition, `{"wm": newest event time, "lo": oldest event time,
"clock": clock, "start": arrival of the first record (after the last pause), "last": newest
arrival, "src": {source: [watermark, arrival]}, "prog": {source: {raw partition: [W, waiting,
arrival of the report]}}}`; a record written by an older version (`{"wm"}` only) reads as a
clock at its `wm`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

#: The key of a partition's clock record in the `clock` table (each partition's store holds
#: its own).
CLOCK_KEY = "clock"

#: The field that marks a clock tick on `vigil.events` (its value: the sending worker's time).
TICK_FIELD = "~clock_tick"


#: The field of a clock tick with the sending worker's ingest progress.
PROGRESS_FIELD = "prog"


def tick_value(
    now_ms: int, progress: Mapping[str, Mapping[str, list[Any]]] | None = None
) -> dict[str, Any]:
    """The value of one clock tick record; `progress`: `{raw topic: {partition: [W,
    waiting]}}` for the raw partitions the sending worker reads (see the module docstring)."""
    value: dict[str, Any] = {TICK_FIELD: now_ms}
    if progress:
        value[PROGRESS_FIELD] = progress
    return value


def tick_progress(value: Mapping[str, Any]) -> Mapping[str, Mapping[str, list[Any]]] | None:
    """The ingest progress a clock tick carries (None: none, a tick of an older version)."""
    progress = value.get(PROGRESS_FIELD)
    return progress if isinstance(progress, Mapping) else None


def is_tick(value: Any) -> bool:
    """True for a clock tick record's value (consumers of `vigil.events` skip them)."""
    return isinstance(value, Mapping) and TICK_FIELD in value


@dataclass(frozen=True, slots=True)
class ClockAdvance:
    """The partition clock before and after one event or tick, and the record to store."""

    before: int | None
    clock: int | None
    #: the oldest event time the partition has seen
    earliest: int | None
    record: dict[str, Any]


def advance(
    record: Mapping[str, Any] | None,
    source: str | None,
    ts_ms: int | None,
    arrival_ms: int | None,
    idle_ms: int,
    expected: Collection[str] = (),
    settle: bool = False,
    progress: Mapping[str, Mapping[str, list[Any]]] | None = None,
) -> ClockAdvance:
    """Fold one event (`source`, `ts_ms`) or a tick (`source` None) that arrived at
    `arrival_ms` into a partition's clock record. `expected` names the sources that may send
    (the raw topics): until each was heard from, or the idle time passed since the partition's
    first record, the clock waits. `progress`: what a tick reports of the raw partitions
    (`tick_progress`).

    The clock is one millisecond before the aligned watermark (everything up to it has
    arrived) and never goes back. With `arrival_ms` None (offline, in event-time order) the
    aligned watermark is the newest event time. When every source is idle, or with `settle`
    (offline end of input), the clock reaches the newest event time itself.
    """
    record = dict(record) if record else {"wm": None}
    before = record.get("clock", record.get("wm"))
    newest = record.get("wm")
    sources = dict(record.get("src") or {})  # entries are replaced, never changed in place
    reports = dict(record.get("prog") or {})
    if arrival_ms is not None:
        last = record.get("last")
        if last is None:
            record["start"] = arrival_ms  # the partition's first record
        elif arrival_ms - last > idle_ms:
            # The whole partition got nothing, ticks included: no worker was writing (a
            # restart, a rebalance). A pause of everything is charged to no source.
            sources = {name: [entry[0], arrival_ms] for name, entry in sources.items()}
            reports = {
                name: {p: [r[0], r[1], arrival_ms] for p, r in parts.items()}
                for name, parts in reports.items()
            }
            record["start"] = arrival_ms
        record["last"] = arrival_ms if last is None else max(last, arrival_ms)
    if source is not None and ts_ms is not None:
        newest = ts_ms if newest is None else max(newest, ts_ms)
        record["lo"] = ts_ms if record.get("lo") is None else min(record["lo"], ts_ms)
        if arrival_ms is not None:  # offline the clock needs no per-source state
            mark = sources.get(source, (None, None))[0]
            sources[source] = [ts_ms if mark is None else max(mark, ts_ms), arrival_ms]
    if progress and arrival_ms is not None:
        reports = _take_reports(reports, progress, arrival_ms)
    if settle:  # end of input: nothing more is coming, the newest events are in too
        aligned = None if newest is None else newest + 1
    elif arrival_ms is None:
        aligned = newest
    elif _waiting_for_first(expected, sources, reports, arrival_ms - record["start"], idle_ms):
        aligned = None
    else:
        aligned = _aligned(sources, reports, arrival_ms, idle_ms, newest)
    clock = before
    # A source may send more events at its watermark's very millisecond: only what is strictly
    # older has all arrived.
    if aligned is not None and (clock is None or aligned - 1 > clock):
        clock = aligned - 1
    record.update(wm=newest, clock=clock, src=sources)
    if reports:
        record["prog"] = reports
    return ClockAdvance(before, clock, record.get("lo"), record)


def _take_reports(
    reports: dict[str, Any], progress: Mapping[str, Mapping[str, list[Any]]], arrival_ms: int
) -> dict[str, Any]:
    """Fold a tick's progress into the stored reports: each raw partition's latest `waiting`,
    its `W` never going back (a worker that took the partition over starts again below it, but
    what it sends again is dropped as a resend). An empty partition (no `W`, nothing waiting,
    never reported otherwise) is not stored: the clock ignores it, and the record is rewritten
    at every step; its topic still counts as reported."""
    reports = dict(reports)
    for name, parts in progress.items():
        mine = dict(reports.get(name) or {})
        for part, (mark, waiting) in parts.items():
            if mark is None and not waiting and part not in mine:
                continue
            old = (mine.get(part) or [None])[0]
            if mark is None or (old is not None and old > mark):
                mark = old
            mine[part] = [mark, bool(waiting), arrival_ms]
        reports[name] = mine
    return reports


def _waiting_for_first(
    expected: Collection[str],
    sources: Mapping[str, Any],
    reports: Mapping[str, Any],
    elapsed_ms: int,
    idle_ms: int,
) -> bool:
    """True while an expected source has not been heard from (nor reported) yet and may still
    come: its first events could be older than anything seen so far."""
    return elapsed_ms <= idle_ms and any(
        name not in sources and name not in reports for name in expected
    )


def _source_marks(
    sources: Mapping[str, list[Any]], reports: Mapping[str, Any], now_ms: int, idle_ms: int
) -> list[int | None]:
    """The watermarks of the sources still sending at `now_ms`: heard from within `idle_ms`,
    or with records waiting in a raw partition. A source's watermark is the newest event time
    it sent here, or the lowest `W` of its reported raw partitions when that is higher; None
    when neither is known (records waiting, none read yet, none sent here): it may bring
    anything, so it holds the clock, and it is not idle."""
    marks: list[int | None] = []
    for name in {*sources, *reports}:
        mark, arrival = sources.get(name) or (None, None)
        parts = (reports.get(name) or {}).values()
        waiting = any(part[1] for part in parts)
        if not waiting and (arrival is None or now_ms - arrival > idle_ms):
            continue  # idle: read to its end and silent here for the idle time
        reported = _reported_mark(parts)
        if reported is not None:
            mark = reported if mark is None else max(mark, reported)
        marks.append(mark)
    return marks


def _reported_mark(parts: Collection[list[Any]]) -> int | None:
    """The lowest `W` of a source's reported raw partitions: nothing it sends from now on is
    older. A partition read to its end that never had an event (empty, or only dead letters)
    does not count; one with records waiting and no `W` yet makes it unknown (None)."""
    marks = []
    for mark, waiting, _ in parts:
        if mark is not None:
            marks.append(mark)
        elif waiting:
            return None
    return min(marks) if marks else None


def has_active_source(record: Mapping[str, Any], now_ms: int, idle_ms: int) -> bool:
    """Whether a partition's clock record has a source still sending at `now_ms` (else the
    partition has nothing to send: every source is idle, or none was heard from)."""
    return bool(_source_marks(record.get("src") or {}, record.get("prog") or {}, now_ms, idle_ms))


def _aligned(
    sources: Mapping[str, list[Any]],
    reports: Mapping[str, Any],
    now_ms: int,
    idle_ms: int,
    newest: int | None,
) -> int | None:
    """The lowest watermark among the sources still sending at `now_ms` (just past the
    newest event time when every source is idle)."""
    active = _source_marks(sources, reports, now_ms, idle_ms)
    if None in active:
        return None  # a source with records waiting and no watermark known: hold
    if active:
        return min(active)  # type: ignore[type-var]
    # Every source idle: nothing more is expected, so events at the newest time are all in.
    return None if newest is None else newest + 1
