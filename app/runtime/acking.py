"""Input offsets for Vigil's agents: processed in order, committed only once processed.

Faust 0.15.3 can move the committed offset past records no agent processed, which loses them
(measured in tests/integration/test_rebalance.py: 1 to 60 events per run):

1. Its stream iterator acks each event in a `finally` around its `yield`: an event interrupted
   while the agent awaits the broker (worker stopping, agent torn down) is acked anyway, and so
   is a message it skips during a rebalance (flow suspended, or an older consumer generation).
2. After a rebalance, recovery seeks to the committed offsets twice (`_resume_streams`, then
   `on_recovery_completed`), the second time while the fetcher already runs. Records of a batch
   fetched before that seek then arrive after it, ahead of the re-read records. The fetcher
   loop keeps a "read offset" per partition: it records the skipped offsets as a "gap" that
   counts as acked (`Consumer._add_gap`, meant for compaction and transaction markers), and
   drops the re-read records as already read. The next commit passes them.
3. After a rebalance, recovery resumes a newly assigned partition before it seeks it to the
   committed offset (`_resume_streams`), and only that seek tells the consumer the offset. A
   record that reaches the agent first may lie past it; taken as the generation's start, the
   offsets before it would count as seen when read again, by Vigil's own order check below.

`processed_events` closes all three. It iterates without Faust's acks and acks an event only
when the loop body came back for the next one (an exception or a cancellation leaves it
unacked).
`install_guards` makes Faust's own acks, gaps and read offsets on the agents' input topics inert,
so Faust neither commits nor drops a record of theirs by itself. Instead `PartitionOrder` checks
that each input partition's offsets arrive contiguously from where the group resumes it (the
committed offset, asked of the broker when the consumer does not know it yet: `GroupStarts`):
a record seen before is skipped; a record after a jump is not processed, and the consumer is
sought back to the first missing offset (the records after it that came in the same fetch are
dropped without another seek for a while: app/runtime/jump_memory.py). A jump seen twice
between the same offsets, in one consumer generation and with nothing processed from its
first offset between, may be real (compaction, a transactional producer's markers): the
broker is asked for the first missing offset, and only if it serves nothing before the record
after the jump are the offsets accepted and released for commit.
Offsets the broker has already deleted (retention outran the consumer) are reported as lost,
with their count, and reading goes on from the log start.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from enum import Enum
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.transport.consumer import Consumer
from faust.types.tuples import ConsumerMessage

from app.runtime import stall_watch
from app.runtime.broker_probe import first_offset_from, group_starts
from app.runtime.eager import start_eagerly
from app.runtime.jump_memory import JumpMemory
from app.settings import Settings

log = logging.getLogger(__name__)

#: How often a lingering batch looks for more buffered events (seconds).
_POLL_S = 0.001

#: Input topics whose offsets only `processed_events` may release.
_guarded_topics: set[str] = set()
#: Messages `processed_events` finished with (weak: they go once Faust drops them).
_processed: weakref.WeakSet[Any] = weakref.WeakSet()
#: Counters since start (also logged): acks and gaps refused, seeks back over a jump, gaps
#: accepted, jumps seen twice whose offsets the broker still served, records deleted by the
#: broker before they were read, stall seeks.
counters = {
    "refused_acks": 0,
    "refused_gaps": 0,
    "seeks": 0,
    "accepted_gaps": 0,
    "disproved_gaps": 0,
    "deleted": 0,
    "stall_seeks": 0,
}

_faust_on_final_ack = ConsumerMessage.on_final_ack
_faust_add_gap = Consumer._add_gap


def _guarded_on_final_ack(message: Any, consumer: Any) -> bool:
    if message.topic in _guarded_topics and message not in _processed:
        counters["refused_acks"] += 1
        log.info(
            "not acking %s[%s]@%s: not processed (it is read again)",
            message.topic,
            message.partition,
            message.offset,
        )
        return False
    return _faust_on_final_ack(message, consumer)


async def _guarded_add_gap(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    if tp.topic in _guarded_topics:
        counters["refused_gaps"] += 1
        return  # `processed_events` re-reads the skipped offsets or accepts the gap itself
    await _faust_add_gap(self, tp, offset_from, offset_to)


class _ReadOffsets(defaultdict):
    """Faust's per-partition read offsets, reading as unknown (None) on guarded topics: its
    fetcher loop then neither drops a record as already read nor records a gap for them."""

    def __getitem__(self, tp: Any) -> Any:
        if tp.topic in _guarded_topics:
            return None
        return super().__getitem__(tp)


_faust_consumer_init = Consumer.__init__


def _guarded_consumer_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _faust_consumer_init(self, *args, **kwargs)
    self._read_offset = _ReadOffsets(lambda: None, self._read_offset)


def install_guards() -> None:
    """Make Faust's acks, gaps and read offsets of guarded topics inert (idempotent). Must run
    before the app's consumer is created (importing this module does it)."""
    ConsumerMessage.on_final_ack = _guarded_on_final_ack  # type: ignore[method-assign]
    Consumer._add_gap = _guarded_add_gap  # type: ignore[method-assign]
    Consumer.__init__ = _guarded_consumer_init  # type: ignore[method-assign]


install_guards()


class Verdict(Enum):
    """What to do with a record, given the offsets its partition delivered before."""

    PROCESS = "process"
    REPEAT = "repeat"  # processed already in this consumer generation
    SEEK_BACK = "seek_back"  # offsets were skipped: read them first
    ACCEPT_GAP = "accept_gap"  # the same jump again after a seek: the offsets do not exist


class PartitionOrder:
    """The next offset expected on each input partition, per consumer generation."""

    def __init__(self) -> None:
        self._next: dict[Any, tuple[Any, int | None]] = {}
        #: Jumps seen and not settled yet, per partition: (generation, {(expected, offset)}).
        self._jumps: dict[Any, tuple[Any, set[tuple[int, int]]]] = {}

    def classify(
        self, tp: Any, offset: int, generation: Any, committed: int | None
    ) -> tuple[Verdict, int | None]:
        """The verdict for a record and, for a jump, the first offset missing before it.

        `committed` (the group's committed offset) is what a new generation starts from.
        """
        known = self._next.get(tp)
        expected = known[1] if known is not None and known[0] == generation else committed
        if expected is None or offset == expected:
            return Verdict.PROCESS, None
        if offset < expected:
            return Verdict.REPEAT, None
        seen = self._jumps.get(tp)
        if seen is None or seen[0] != generation:  # a jump of another generation says nothing
            seen = self._jumps[tp] = (generation, set())
        jumps = seen[1]
        if (expected, offset) in jumps:
            jumps.discard((expected, offset))
            return Verdict.ACCEPT_GAP, expected
        jumps.add((expected, offset))
        return Verdict.SEEK_BACK, expected

    def started(self, tp: Any, generation: Any) -> bool:
        """Whether a record of `tp` was processed in `generation`."""
        known = self._next.get(tp)
        return known is not None and known[0] == generation

    def positions(self, generation: Any) -> dict[Any, int]:
        """The next offset expected of each partition seen in `generation`."""
        return {tp: nxt for tp, (gen, nxt) in self._next.items() if gen == generation}

    def processed(self, tp: Any, offset: int, generation: Any) -> None:
        """Remember that `offset` was processed: `offset + 1` comes next. Jumps from an offset
        up to this one are settled (what was missing arrived): seen again later, they are not
        the same jump, and must not pass for a real gap."""
        self._next[tp] = (generation, offset + 1)
        seen = self._jumps.get(tp)
        if seen is not None:
            pending = {jump for jump in seen[1] if jump[0] > offset}
            if pending:
                self._jumps[tp] = (seen[0], pending)
            else:
                del self._jumps[tp]


def _topic_names(stream: Any) -> set[str]:
    channel = stream.channel
    topics = getattr(channel, "topics", None)
    if topics:
        return {str(name) for name in topics}
    return {channel.get_topic_name()}


async def _accept_gap(consumer: Any, message: Any, first_missing: int) -> Verdict:
    """Offsets `first_missing` up to the record's do not exist (the broker said so): released
    for commit, and the record is processed."""
    tp, offset = message.tp, message.offset
    counters["accepted_gaps"] += 1
    log.info(
        "%s[%s]: offsets %s..%s do not exist", tp.topic, tp.partition, first_missing, offset - 1
    )
    await _faust_add_gap(consumer, tp, first_missing, offset - 1)
    consumer._unacked_messages.add(message)  # processed now: tracked again
    return Verdict.ACCEPT_GAP


async def _handle_jump(
    consumer: Any,
    order: PartitionOrder,
    event: Any,
    first_missing: int,
    memory: JumpMemory,
) -> Verdict:
    """A record arrived after missing offsets: if retention (or compaction) already deleted
    them, accept the loss loudly and go on from the partition's first record; otherwise seek
    back to the first missing one. Returns PROCESS when this record is the one to go on with.
    (Records of a fetch that came before a recent seek back never get here: the batch loop
    drops them, `JumpMemory.stale`.)

    Both ask the consumer's thread, which runs the rebalance callbacks; Faust's revocation
    there waits until every record handed to a stream is acked (`wait_empty`). So the record
    is released from that wait first, or a rebalance arriving now would wait for it forever
    while it waits for the consumer's thread (seen in test_rebalance: a worker stuck in
    `wait_empty`, dropped from the group)."""
    message = event.message
    tp, offset = message.tp, message.offset
    consumer._unacked_messages.discard(message)
    generation = message.generation_id
    if memory.gap_ends_at(tp, generation, first_missing) == offset:
        return await _accept_gap(consumer, message, first_missing)
    earliest = (await consumer.earliest_offsets(tp)).get(tp)
    if earliest is not None and earliest > first_missing:
        counters["deleted"] += earliest - first_missing
        log.error(
            "%s[%s]: offsets %s..%s were deleted by the broker (retention) before they were "
            "read: %s records lost",
            tp.topic,
            tp.partition,
            first_missing,
            earliest - 1,
            earliest - first_missing,
        )
        await _faust_add_gap(consumer, tp, first_missing, earliest - 1)
        order.processed(tp, earliest - 1, message.generation_id)
        if offset == earliest:
            consumer._unacked_messages.add(message)  # processed now: tracked again
            return Verdict.PROCESS
        if offset < earliest:
            return Verdict.REPEAT
        first_missing = earliest
    counters["seeks"] += 1
    # A record of a stale fetch seeks again once `jump_memory.RESEEK_S` passed (Faust's
    # fetcher may have moved its position past the first missing offset meanwhile); it is
    # logged once.
    report = log.debug if memory.reported.get(tp) == first_missing else log.warning
    memory.reported[tp] = first_missing
    report(
        "%s[%s]: offset %s arrived before %s; reading from %s again",
        tp.topic,
        tp.partition,
        offset,
        first_missing,
        first_missing,
    )
    await consumer.seek_wait({tp: first_missing})  # in the consumer's own thread
    memory.seek(tp, generation, first_missing)
    return Verdict.SEEK_BACK


#: How long the broker is given to serve the first missing offset of a gap, or to say where
#: the group resumes its partitions (`GroupStarts`), in seconds.
GAP_CHECK_S = 10.0


async def first_served_offset(consumer: Any, tp: Any, offset: int) -> int | None:
    """The first offset of `tp` at or after `offset` the broker serves to a consumer reading as
    the worker's does (None: not known within `GAP_CHECK_S`)."""
    isolation = "read_committed" if consumer.in_transaction else "read_uncommitted"
    return await first_offset_from(
        Settings.from_env().bootstrap_servers,
        TopicPartition(tp.topic, tp.partition),
        offset,
        isolation,
        GAP_CHECK_S,
    )


class GroupStarts:
    """Where the group resumes each of an agent's partitions, asked of the broker once per
    consumer generation, for the records that arrive before Faust knows the committed offset.

    Faust's recovery resumes a newly assigned partition and only then seeks it to the
    committed offset (`_resume_streams`: `resume_partitions`, then `perform_seek`, which
    records the offset), so a record can reach the agent first, and it may lie past the
    committed offset (records beyond it arrive first in most lives). Taken as the start, the
    offsets before it would then count as seen and be skipped when read again: events lost at
    ingest, window counts short at the process agent (test_rebalance, twice in six runs).
    Asked instead, such a record is a jump like any other and is read again from the start."""

    def __init__(self, consumer: Any, topics: set[str]) -> None:
        self.consumer = consumer
        self.topics = topics
        self._generation: Any = None
        #: (topic, partition) -> where the group resumes it (None: the broker did not say)
        self._starts: dict[Any, int | None] = {}

    async def of(self, tp: Any, offset: int, generation: Any) -> int | None:
        """The offset the group resumes `tp` from, for a record at `offset` (None: the broker
        did not answer within `GAP_CHECK_S`, or not for this partition; the record is then
        taken as the start, as Faust would)."""
        if generation != self._generation:
            self._generation, self._starts = generation, {}
        key = (tp.topic, tp.partition)
        if key not in self._starts:
            assigned = {t for t in self.consumer.assignment() if t.topic in self.topics}
            wanted = {TopicPartition(t.topic, t.partition) for t in assigned | {tp}}
            asked_at = time.monotonic()
            try:
                found = await group_start_offsets(self.consumer, sorted(wanted))
            except (TimeoutError, KafkaError, OSError) as exc:
                log.warning(
                    "%s[%s]: where the group resumes it is not known (%r); offset %s taken "
                    "as the start, and so for the %s partitions asked until the next "
                    "generation",
                    tp.topic,
                    tp.partition,
                    exc,
                    offset,
                    len(wanted),
                )
                self._starts.update({(t.topic, t.partition): None for t in wanted})
                return None
            self._starts.update({(t.topic, t.partition): o for t, o in found.items()})
            log.info(
                "%s[%s]: offset %s came before the committed offset was known; the broker "
                "says the group resumes at %s (generation %s, %s partitions asked in %.0f ms)",
                tp.topic,
                tp.partition,
                offset,
                self._starts.get(key),
                generation,
                len(wanted),
                1000 * (time.monotonic() - asked_at),
            )
        return self._starts.get(key)


async def group_start_offsets(consumer: Any, tps: list[TopicPartition]) -> dict[Any, int]:
    """Where the worker's consumer group resumes `tps`, asked of the broker
    (app/runtime/broker_probe.py `group_starts`)."""
    return await group_starts(
        Settings.from_env().bootstrap_servers, consumer.app.conf.id, tps, GAP_CHECK_S
    )


async def _confirm_gap(
    consumer: Any,
    order: PartitionOrder,
    event: Any,
    first_missing: int,
    memory: JumpMemory,
) -> Verdict:
    """The same jump came twice: accept its offsets as not existing only if the broker, asked
    directly, serves nothing before the record after them; otherwise it is a jump like any
    other (`_handle_jump`). (A jump seen twice was once taken for a gap as it stood, and a
    restarted worker skipped 711 records that existed: something had moved the fetch
    position past them twice, docs/crash-safety.md.)"""
    message = event.message
    tp, offset = message.tp, message.offset
    consumer._unacked_messages.discard(message)  # a rebalance must not wait for the check
    if memory.checked_lately(tp, message.generation_id, first_missing):
        # Answered lately: another record fetched before the last seek, seen a second time.
        return await _handle_jump(consumer, order, event, first_missing, memory)
    first = await first_served_offset(consumer, tp, first_missing)
    if first is not None and first >= offset:
        return await _accept_gap(consumer, message, first_missing)
    counters["disproved_gaps"] += 1
    memory.check(tp, message.generation_id, first_missing, first)
    log.warning(
        "%s[%s]: offset %s arrived twice before %s, which the broker %s",
        tp.topic,
        tp.partition,
        offset,
        first_missing,
        "did not serve in time" if first is None else f"serves (first: {first})",
    )
    return await _handle_jump(consumer, order, event, first_missing, memory)


def _positions(consumer: Any, order: PartitionOrder, topics: set[str]) -> dict[Any, int | None]:
    """Where the agent is on each of its assigned partitions: the next offset expected, or,
    before any record of this generation arrived, the committed one (None: none known)."""
    seen = order.positions(consumer.app.consumer_generation_id)
    return {
        tp: seen.get(tp, consumer._committed_offset.get(tp))
        for tp in consumer.assignment()
        if tp.topic in topics
    }


async def processed_events(stream: Any) -> AsyncIterator[Any]:
    """Yield the stream's events in offset order per partition; ack each one only after the
    loop body handled it completely."""
    async for batch in processed_batches(stream, 1):
        yield batch[0]


async def processed_batches(
    stream: Any, max_events: int, linger_s: float | Callable[[], float] = 0.0
) -> AsyncIterator[list[Any]]:
    """Yield the stream's events in batches, in offset order per partition; ack a batch's
    events only after the loop body handled the whole batch.

    A batch waits for its first event; then it takes the events buffered in the stream's
    channel, up to `max_events`, waiting at most `linger_s` for more while the buffer is empty.
    The latency a batch adds is therefore at most `linger_s`; with `max_events=1` it is none
    (the channel's buffer is Faust's `stream_buffer_maxsize`). A callable `linger_s` is asked
    once per batch.

    While a batch holds events, nothing here waits unboundedly: a revocation waits for them to
    be acked (Faust's `wait_empty`), and it clears the channel's buffer, so a batch that then
    waited for one more event would wait for ever (`_take_buffered`). For the same reason a
    record after a jump, whose handling asks the consumer's thread (which runs the revocation),
    is handled only after the batch before it was acked.
    """
    _guarded_topics.update(_topic_names(stream))
    consumer = stream.app.consumer
    order = PartitionOrder()
    jumps = JumpMemory()
    manual = stream.noack()
    buffered = manual.channel.queue
    events = manual.events().__aiter__()
    loop = asyncio.get_running_loop()
    # A partition that stops delivering with records waiting is read again (stall_watch).
    topics = _topic_names(stream)
    watcher = asyncio.ensure_future(
        stall_watch.watch(
            consumer,
            lambda: _positions(consumer, order, topics),
            lambda: not buffered.empty(),
            counters,
        )
    )
    # Where the group resumes a partition whose committed offset Faust does not know yet.
    starts = GroupStarts(consumer, topics)
    # A record after a jump, met while a batch was open: (event, verdict, first missing offset).
    after_jump: tuple[Any, Verdict, int] | None = None
    try:
        while True:
            batch: list[Any] = []
            deadline = None
            while True:
                if after_jump is not None:
                    (event, verdict, first_missing), after_jump = after_jump, None
                    if event.message.generation_id != consumer.app.consumer_generation_id:
                        # A rebalance came while the batch before it ran: its partition is
                        # read again from the committed offset, by whoever owns it now.
                        consumer._unacked_messages.discard(event.message)
                        continue
                else:
                    if batch:
                        if len(batch) >= max_events:
                            break
                        if buffered.empty():
                            if deadline is None:
                                wait = linger_s() if callable(linger_s) else linger_s
                                deadline = loop.time() + wait
                            if loop.time() >= deadline:
                                break
                            await asyncio.sleep(_POLL_S)
                            continue
                    try:
                        event = await (_take_buffered(events) if batch else events.__anext__())
                    except StopAsyncIteration:
                        return
                    message = event.message
                    committed = consumer._committed_offset.get(message.tp)
                    if committed is None and not order.started(message.tp, message.generation_id):
                        committed = await starts.of(
                            message.tp, message.offset, message.generation_id
                        )
                    verdict, first_missing = order.classify(
                        message.tp, message.offset, message.generation_id, committed
                    )
                    if first_missing is not None and jumps.stale(
                        message, first_missing, verdict is Verdict.ACCEPT_GAP
                    ):
                        # Fetched before the last seek back: read again after it, and the
                        # batch goes on (nothing here asks the consumer's thread).
                        consumer._unacked_messages.discard(message)
                        continue
                    if batch and verdict in (Verdict.SEEK_BACK, Verdict.ACCEPT_GAP):
                        after_jump = (event, verdict, first_missing)
                        break
                message = event.message
                tp, offset = message.tp, message.offset
                if verdict is Verdict.SEEK_BACK:
                    verdict = await _handle_jump(consumer, order, event, first_missing, jumps)
                elif verdict is Verdict.ACCEPT_GAP:
                    verdict = await _confirm_gap(consumer, order, event, first_missing, jumps)
                if verdict in (Verdict.PROCESS, Verdict.ACCEPT_GAP):
                    # Expected next from here on; if the body fails, this generator is not
                    # resumed and nothing of the batch is acked.
                    order.processed(tp, offset, message.generation_id)
                    batch.append(event)
                else:
                    # A repeat was processed before; a record after a jump is read again after
                    # the seek. Neither is acked (Faust would commit past a missing offset just
                    # before an acked one: `Consumer._new_offset` only stops at gaps of two or
                    # more), but a rebalance must not wait for them.
                    consumer._unacked_messages.discard(message)
            yield batch
            # Reached only when the body finished (or `continue`d) without raising.
            for event in batch:
                _processed.add(event.message)
                await manual.ack(event)
    finally:
        watcher.cancel()


async def _take_buffered(events: Any) -> Any:
    """The next event of a stream whose channel has one buffered, taken without giving the
    event loop a turn. Faust's stream iterator offers the loop a turn (`sleep(0)`) before each
    event; a revocation running in that turn empties the buffer, and the open batch would then
    wait, unacked, for an event that comes only after the revocation, which waits for the
    batch (seen as a worker stuck in `wait_empty` when a second worker joined)."""
    taken, result = start_eagerly(events.__anext__(), past_bare_yields=True)
    return result if taken else await result
