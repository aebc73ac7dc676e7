"""Agents process each input partition in offset order and ack an offset only after processing
it (app/runtime/acking.py)."""

from __future__ import annotations

import asyncio

import pytest
from faust.types.tuples import TP, ConsumerMessage

from app.runtime import acking, jump_memory
from app.runtime.acking import PartitionOrder, Verdict


class RecordingConsumer:
    """What processed_events and Faust's acks use of Faust's consumer."""

    def __init__(self, committed: dict | None = None) -> None:
        self.acked: list[int] = []
        self.seeks: list[tuple[TP, int]] = []
        self._committed_offset = dict(committed or {})
        self._unacked_messages: set = set()
        self.earliest: dict[TP, int] = {}
        self.app = type("App", (), {"consumer_generation_id": 1})()

    def assignment(self) -> set[TP]:
        return set()

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.earliest.get(tp, 0) for tp in tps}

    def ack(self, message: ConsumerMessage) -> bool:
        message.acked = True
        self.acked.append(message.offset)
        return True

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.extend(partitions.items())


def message(topic: str, offset: int, generation: int = 1) -> ConsumerMessage:
    return ConsumerMessage(
        topic, 0, offset, 0.0, 0, None, b"k", b"v", None, generation_id=generation
    )


class FakeEvent:
    def __init__(self, msg: ConsumerMessage, consumer: RecordingConsumer) -> None:
        self.message = msg
        self.consumer = consumer

    def ack(self) -> bool:
        return self.message.ack(self.consumer)


class FakeQueue:
    """The channel's buffer: `buffered` events are waiting in it."""

    def __init__(self) -> None:
        self.buffered = 0

    def empty(self) -> bool:
        return self.buffered == 0


class FakeStream:
    """Yields events like Faust's noack stream; `ack` goes through the message, as Faust's.

    `arrivals` splits the events into groups that reach the channel's buffer together (by
    default all at once)."""

    def __init__(
        self,
        topic: str,
        events: list[FakeEvent],
        consumer: RecordingConsumer,
        arrivals: list[int] | None = None,
    ) -> None:
        self.channel = type("Channel", (), {"topics": (topic,), "queue": FakeQueue()})()
        self.app = type("App", (), {"consumer": consumer})()
        self._events = events
        self._arrivals = arrivals or [len(events)]

    def noack(self) -> FakeStream:
        return self

    async def events(self):
        queue = self.channel.queue
        position = 0
        for size in self._arrivals:
            queue.buffered = size
            for event in self._events[position : position + size]:
                queue.buffered -= 1
                self.app.consumer._unacked_messages.add(event.message)
                yield event
            position += size

    async def ack(self, event: FakeEvent) -> bool:
        return event.ack()


def run(stream: FakeStream, body=None) -> list[int]:
    """Offsets the loop body saw."""
    seen: list[int] = []

    async def consume() -> None:
        async for event in acking.processed_events(stream):
            seen.append(event.message.offset)
            if body is not None:
                body(event)

    asyncio.run(consume())
    return seen


def stream_of(topic: str, offsets: list[int], committed: int | None = None, generation=1):
    tp = TP(topic, 0)
    consumer = RecordingConsumer({tp: committed} if committed is not None else {})
    events = [FakeEvent(message(topic, o, generation), consumer) for o in offsets]
    return FakeStream(topic, events, consumer), consumer


@pytest.fixture(autouse=True)
def _broker_knows_no_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker is not asked in these tests: where a group resumes is unknown unless a test
    says (a record is then taken as the start, as Faust takes it)."""

    async def unknown(consumer, tps) -> dict:
        return {}

    monkeypatch.setattr(acking, "group_start_offsets", unknown)


def test_faust_ack_of_an_unprocessed_message_is_refused_on_guarded_topics():
    stream, consumer = stream_of("guarded-a", [])
    run(stream)  # registers the topic and installs the guards
    assert message("guarded-a", 7).ack(consumer) is False  # Faust acking a skipped message
    assert consumer.acked == []
    assert message("unguarded-topic", 3).ack(consumer) is True  # other topics: Faust's way
    assert consumer.acked == [3]


def test_acks_only_after_the_body_finished():
    stream, consumer = stream_of("guarded-b", [0, 1, 2])

    def body(event) -> None:
        assert consumer.acked == list(range(event.message.offset))  # not yet this one

    assert run(stream, body) == [0, 1, 2]
    assert consumer.acked == [0, 1, 2]


def test_an_event_whose_processing_failed_or_was_cancelled_stays_unacked():
    stream, consumer = stream_of("guarded-c", [0, 1, 2])

    def body(event) -> None:
        if event.message.offset == 1:
            raise asyncio.CancelledError  # worker stopping while awaiting the broker

    with pytest.raises(asyncio.CancelledError):
        run(stream, body)
    assert consumer.acked == [0]
    assert stream._events[1].ack() is False  # Faust's own `finally` ack is refused too
    assert consumer.acked == [0]


def test_a_jump_is_not_processed_the_consumer_reads_the_skipped_offsets_again():
    # 5 and 6 were dropped (the race after a rebalance); 7 arrives first, then the re-read.
    stream, consumer = stream_of("guarded-d", [3, 4, 7, 5, 6, 7, 8], committed=3)
    assert run(stream) == [3, 4, 5, 6, 7, 8]
    assert consumer.seeks == [(TP("guarded-d", 0), 5)]
    assert consumer.acked == [3, 4, 5, 6, 7, 8]
    assert not consumer._unacked_messages - {e.message for e in stream._events if e.message.acked}


def test_records_below_the_committed_offset_or_seen_before_are_not_processed_again():
    stream, consumer = stream_of("guarded-e", [5, 6, 7, 6, 7, 8], committed=6)
    assert run(stream) == [6, 7, 8]
    assert consumer.seeks == []


def test_a_new_generation_starts_from_the_committed_offset():
    order = PartitionOrder()
    tp = TP("t", 0)
    order.processed(tp, 9, generation=1)
    assert order.classify(tp, 10, 1, committed=4) == (Verdict.PROCESS, None)
    assert order.classify(tp, 4, 2, committed=4) == (Verdict.PROCESS, None)
    assert order.classify(tp, 6, 2, committed=4) == (Verdict.SEEK_BACK, 4)


def test_the_same_jump_twice_is_a_real_gap_and_is_accepted():
    order = PartitionOrder()
    tp = TP("t", 0)
    order.processed(tp, 9, generation=1)
    assert order.classify(tp, 12, 1, committed=None) == (Verdict.SEEK_BACK, 10)
    assert order.classify(tp, 12, 1, committed=None) == (Verdict.ACCEPT_GAP, 10)


def _gap_recorder(monkeypatch: pytest.MonkeyPatch, served: int | None) -> list[tuple[int, int]]:
    """Faust's gaps as acking adds them; the broker serves `served` first from a gap."""
    gaps: list[tuple[int, int]] = []

    async def add_gap(self, tp, offset_from, offset_to) -> None:
        gaps.append((offset_from, offset_to))

    async def first_served_offset(consumer, tp, offset) -> int | None:
        return served

    monkeypatch.setattr(acking, "_faust_add_gap", add_gap)
    monkeypatch.setattr(acking, "first_served_offset", first_served_offset)
    return gaps


def test_an_accepted_gap_releases_the_missing_offsets_for_commit(monkeypatch):
    # Offsets 2 and 3 do not exist (say, a transactional producer's markers): the broker
    # serves 4 first when asked for 2.
    gaps = _gap_recorder(monkeypatch, served=4)
    stream, consumer = stream_of("guarded-f", [0, 1, 4, 4, 5], committed=None)
    assert run(stream) == [0, 1, 4, 5]
    assert consumer.seeks == [(TP("guarded-f", 0), 2)]
    assert gaps == [(2, 3)]


@pytest.mark.parametrize("served", [2, None], ids=["served", "not served in time"])
def test_a_jump_seen_twice_is_not_accepted_while_the_broker_serves_its_offsets(monkeypatch, served):
    """The fetch position was moved past offsets that exist, twice: they are read again, not
    skipped (a worker once lost 711 records that way)."""
    gaps = _gap_recorder(monkeypatch, served=served)
    stream, consumer = stream_of("guarded-g", [0, 1, 4, 4, 2, 3, 4, 5], committed=None)
    assert run(stream) == [0, 1, 2, 3, 4, 5]
    assert consumer.seeks == [(TP("guarded-g", 0), 2), (TP("guarded-g", 0), 2)]
    assert gaps == []
    assert acking.counters["disproved_gaps"] >= 1


def test_records_fetched_before_a_seek_back_are_dropped_without_seeking_each():
    """Faust delivers a whole fetch before it fetches from a new position: the records after a
    jump that came in the same fetch are dropped, and the partition is sought back once."""
    stream, consumer = stream_of("guarded-s", [0, 1, 5, 6, 7, 8, 2, 3, 4, 5, 6, 7, 8, 9])
    assert run(stream) == list(range(10))
    assert consumer.seeks == [(TP("guarded-s", 0), 2)]
    assert not consumer._unacked_messages - {e.message for e in stream._events if e.message.acked}


class Clock:
    """`time` as acking reads it, set by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_a_stale_record_seeks_again_once_the_last_seek_back_is_old(monkeypatch):
    """The position may have moved past the missing offsets again after the seek: a record
    after the jump seeks again once `RESEEK_S` has passed."""
    clock = Clock()
    monkeypatch.setattr(jump_memory, "time", clock)
    stream, consumer = stream_of("guarded-t", [0, 1, 5, 6, 7, 2, 3, 4, 5, 6, 7])
    when = {6: 0.5 * jump_memory.RESEEK_S, 7: 1.5 * jump_memory.RESEEK_S}
    events = stream.events

    async def timed():
        async for event in events():
            if event.message.offset in when and not consumer.seeks[1:]:
                clock.now = when[event.message.offset]
            yield event

    stream.events = timed
    assert run(stream) == list(range(8))
    # 5 seeks back to 2; 6, half a window later, is dropped; 7, after it, seeks again.
    assert consumer.seeks == [(TP("guarded-t", 0), 2)] * 2


def test_a_real_gap_is_accepted_when_a_stale_record_came_first(monkeypatch):
    """Offsets 2 and 3 do not exist and the committed offset is 2; a record fetched earlier
    (9) comes first. The re-read 4 first looks stale; once the broker said it serves 4 first
    from 2, 4 settles the gap whenever it comes."""
    gaps = _gap_recorder(monkeypatch, served=4)
    offsets = [9, 4, 5, 6, 7, 8, 9, 4, 5, 6, 7, 8, 9, 10]
    stream, consumer = stream_of("guarded-v", offsets, committed=2)
    assert run(stream) == list(range(4, 11))
    assert consumer.seeks == [(TP("guarded-v", 0), 2)] * 2
    assert gaps == [(2, 3)]


def test_the_broker_is_asked_once_while_a_stale_fetch_arrives_twice(monkeypatch):
    """The same records after a jump arrive twice: the broker is asked once whether the
    missing offsets exist; it serves them, so they are read again, not skipped."""
    gaps = _gap_recorder(monkeypatch, served=2)
    asked: list[int] = []
    served = acking.first_served_offset

    async def counted(consumer, tp, offset) -> int | None:
        asked.append(offset)
        return await served(consumer, tp, offset)

    monkeypatch.setattr(acking, "first_served_offset", counted)
    offsets = [0, 1, 4, 5, 6, 4, 5, 6, 2, 3, 4, 5, 6]
    stream, consumer = stream_of("guarded-u", offsets)
    assert run(stream) == list(range(7))
    assert asked == [2]
    # Once for the jump, once more after the broker's answer (the position moved again).
    assert consumer.seeks == [(TP("guarded-u", 0), 2)] * 2
    assert gaps == []


def test_faust_read_offsets_of_guarded_topics_read_as_unknown():
    stream, _ = stream_of("guarded-g", [])
    run(stream)
    offsets = acking._ReadOffsets(lambda: None)
    offsets[TP("guarded-g", 0)] = 41
    offsets[TP("other", 0)] = 41
    # Faust's fetcher then neither drops re-read records below 41 nor counts a jump as a gap.
    assert offsets[TP("guarded-g", 0)] is None
    assert offsets[TP("other", 0)] == 41


def test_offsets_deleted_by_retention_before_they_were_read_are_reported_and_skipped():
    # Committed 3, but the broker already deleted 3..9 (retention): the consumer was reset to
    # the log start. Seeking back would loop for ever; the loss is logged and counted instead.
    stream, consumer = stream_of("guarded-h", [10, 11], committed=3)
    consumer.earliest[TP("guarded-h", 0)] = 10
    gaps: list[tuple[int, int]] = []

    async def add_gap(self, tp, offset_from, offset_to) -> None:
        gaps.append((offset_from, offset_to))

    original, deleted = acking._faust_add_gap, acking.counters["deleted"]
    acking._faust_add_gap = add_gap
    try:
        assert run(stream) == [10, 11]
    finally:
        acking._faust_add_gap = original
    assert consumer.seeks == []
    assert gaps == [(3, 9)]
    assert acking.counters["deleted"] - deleted == 7
    assert consumer.acked == [10, 11]


def run_batches(stream: FakeStream, max_events: int, body=None, linger=0.0) -> list[list[int]]:
    """Offsets of each batch the loop body saw."""
    seen: list[list[int]] = []

    async def consume() -> None:
        async for batch in acking.processed_batches(stream, max_events, linger):
            seen.append([event.message.offset for event in batch])
            if body is not None:
                body(batch)

    asyncio.run(consume())
    return seen


def test_a_batch_takes_what_is_buffered_up_to_its_size_and_never_waits_for_more():
    tp_events = [0, 1, 2, 3, 4, 5, 6]
    stream, consumer = stream_of("guarded-batch-a", tp_events)
    stream._arrivals = [5, 1, 1]  # five arrive together, then one at a time

    def body(batch) -> None:  # nothing of the batch is acked while its body runs
        assert consumer.acked == list(range(batch[0].message.offset))

    assert run_batches(stream, 3, body) == [[0, 1, 2], [3, 4], [5], [6]]
    assert consumer.acked == tp_events


def test_records_fetched_before_a_seek_back_do_not_cut_the_batch_they_arrive_in():
    topic = "guarded-batch-s"
    consumer = RecordingConsumer()
    arrivals = [(0, 0), (0, 3), (1, 0), (0, 4), (1, 1), (0, 1), (0, 2), (0, 3), (0, 4)]
    events = [
        FakeEvent(
            ConsumerMessage(topic, p, o, 0.0, 0, None, b"k", b"v", None, generation_id=1),
            consumer,
        )
        for p, o in arrivals
    ]
    stream = FakeStream(topic, events, consumer)
    batches: list[list[tuple[int, int]]] = []

    async def consume() -> None:
        async for batch in acking.processed_batches(stream, 100):
            batches.append([(e.message.partition, e.message.offset) for e in batch])

    asyncio.run(consume())
    # The jump to 3 ends the first batch; the stale 4 after it is dropped inside the next.
    assert batches == [[(0, 0)], [(1, 0), (1, 1), (0, 1), (0, 2), (0, 3), (0, 4)]]
    assert consumer.seeks == [(TP(topic, 0), 1)]


def test_a_linger_given_as_a_function_is_asked_once_per_batch_that_waits():
    stream, consumer = stream_of("guarded-batch-d", [0, 1, 2, 3, 4, 5, 6])
    stream._arrivals = [5, 1, 1]
    asked: list[int] = []

    def linger() -> float:  # the process agent's: longer while ingest reads a backlog
        asked.append(1)
        return 0.0

    assert run_batches(stream, 3, linger=linger) == [[0, 1, 2], [3, 4], [5], [6]]
    # the first batch filled without waiting; the others found the buffer empty once each
    assert len(asked) == 3
    assert consumer.acked == [0, 1, 2, 3, 4, 5, 6]


def test_a_failed_batch_leaves_every_event_of_it_unacked():
    stream, consumer = stream_of("guarded-batch-b", [0, 1, 2, 3, 4])

    def body(batch) -> None:
        if batch[0].message.offset == 2:
            raise RuntimeError("logic bug")

    with pytest.raises(RuntimeError):
        run_batches(stream, 2, body)
    assert consumer.acked == [0, 1]


def test_a_jump_inside_a_batch_ends_the_batch_and_is_handled_once_it_is_acked():
    """3 is missing when 4 arrives; after the seek 3, 4 and 5 come again. The seek asks the
    consumer's thread, which may be running a revocation that waits for the open batch."""
    stream, consumer = stream_of("guarded-batch-c", [1, 2, 4, 5, 3, 4, 5], committed=1)
    acked_at_seek: list[list[int]] = []

    async def seek_wait(partitions) -> None:
        acked_at_seek.append(list(consumer.acked))
        consumer.seeks.extend(partitions.items())

    consumer.seek_wait = seek_wait
    assert run_batches(stream, 10) == [[1, 2], [3, 4, 5]]
    assert consumer.seeks[0] == (TP("guarded-batch-c", 0), 3)
    assert acked_at_seek[0] == [1, 2], "the seek was asked for while the batch was unacked"
    assert consumer.acked == [1, 2, 3, 4, 5]


def test_a_record_after_a_jump_held_over_a_rebalance_is_left_to_the_new_generation():
    """The batch before the jump ran while a rebalance came: the held record's partition is
    read again from the committed offset, so it is neither sought for nor acked here."""
    stream, consumer = stream_of("guarded-batch-r", [1, 2, 4], committed=1)

    def body(batch) -> None:
        consumer.app.consumer_generation_id = 2  # a rebalance during the body

    assert run_batches(stream, 10, body) == [[1, 2]]
    assert consumer.seeks == []
    assert consumer.acked == [1, 2]
    assert all(m.offset != 4 for m in consumer._unacked_messages)


class RevokedStream(FakeStream):
    """Like Faust's stream iterator, offers the loop a turn before each event. A revocation
    (`revoke`) empties the channel's buffer; the stream then delivers nothing until the
    revocation ends (here: it ends)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cleared = False
        self.revoked = asyncio.Event()

    async def events(self):
        queue = self.channel.queue
        queue.buffered = len(self._events)
        for event in self._events:
            await asyncio.sleep(0)
            if self.cleared:
                await self.revoked.wait()
                return
            queue.buffered -= 1
            self.app.consumer._unacked_messages.add(event.message)
            yield event

    async def revoke(self, wait_s: float) -> bool:
        """At the first loop turn after an event was handed out: empty the buffer and wait
        for every handed-out event to be acked, as Faust's `wait_empty` (False: not in
        `wait_s`)."""
        unacked = self.app.consumer._unacked_messages
        while not unacked:
            await asyncio.sleep(0)
        self.cleared, self.channel.queue.buffered = True, 0
        deadline = asyncio.get_running_loop().time() + wait_s
        try:
            while any(not m.acked for m in unacked):
                if asyncio.get_running_loop().time() > deadline:
                    return False
                await asyncio.sleep(0.01)
            return True
        finally:
            self.revoked.set()


def test_a_revocation_never_waits_for_a_batch_that_waits_for_more_events():
    """Seen as a worker stuck in Faust's `wait_empty` when a second worker joined: the open
    batch asked the stream for one more buffered event, the stream offered the loop a turn,
    the revocation emptied the buffer in it and waited for the batch, which waited for an
    event that could only come after the revocation."""
    consumer = RecordingConsumer()
    events = [FakeEvent(message("guarded-revoked", o), consumer) for o in range(4)]
    stream = RevokedStream("guarded-revoked", events, consumer)
    revocation_ended: list[bool] = []

    async def consume() -> None:
        revocation = asyncio.ensure_future(stream.revoke(wait_s=1.0))
        async for _batch in acking.processed_batches(stream, 10):
            pass
        revocation_ended.append(await revocation)

    asyncio.run(consume())
    assert revocation_ended == [True], "the revocation waited for a batch that waited for it"
    assert consumer.acked == [0, 1, 2, 3]


def test_a_record_after_a_jump_never_holds_up_a_rebalance():
    """The consumer's thread runs Faust's revocation, which waits for every record handed to a
    stream to be acked: a record that makes the agent ask that thread (for the log start, to
    seek back) must not be among them, or both wait for each other."""
    stream, consumer = stream_of("guarded-j", [3, 7, 4, 5, 6, 7], committed=3)
    waited_for: list[set[int]] = []

    async def earliest_offsets(*tps):
        waited_for.append({m.offset for m in consumer._unacked_messages if not m.acked})
        return dict.fromkeys(tps, 0)

    consumer.earliest_offsets = earliest_offsets
    assert run(stream) == [3, 4, 5, 6, 7]
    assert waited_for == [set()], "the record after the jump was still awaited by revocation"


def test_a_settled_jump_seen_again_is_read_again_not_taken_for_a_real_gap():
    """After a seek back, the missing offsets arrived: that jump is settled. The same pair of
    offsets in a later race (another stale record after another seek) must seek back again,
    not be accepted as offsets that do not exist (which would skip them)."""
    order = PartitionOrder()
    tp = TP("t", 0)
    order.processed(tp, 861, generation=3)
    assert order.classify(tp, 949, 3, committed=None) == (Verdict.SEEK_BACK, 862)
    order.processed(tp, 862, generation=3)  # the re-read arrived
    for offset in range(863, 949):
        order.processed(tp, offset, generation=3)
    # Later, a new generation starts again from the committed 862 and the race repeats.
    assert order.classify(tp, 949, 4, committed=862) == (Verdict.SEEK_BACK, 862)
    # A jump left unsettled by a rebalance does not carry over into the next generation either.
    order.processed(tp, 861, generation=5)
    assert order.classify(tp, 949, 5, committed=None) == (Verdict.SEEK_BACK, 862)
    assert order.classify(tp, 949, 6, committed=862) == (Verdict.SEEK_BACK, 862)
    # Seen twice in the same generation with nothing settled between: a real gap.
    assert order.classify(tp, 949, 6, committed=862) == (Verdict.ACCEPT_GAP, 862)


def test_the_stall_watch_sees_every_assigned_partition_of_the_agent_where_it_is():
    """Seen in this generation: the next offset expected; not yet: the committed one, or None
    (a partition that delivers nothing at all after an assignment is watched too)."""
    seen, silent, unknown = TP("in", 0), TP("in", 1), TP("in", 2)
    consumer = RecordingConsumer({silent: 40})
    consumer.assignment = lambda: {seen, silent, unknown, TP("other", 0)}
    consumer.app = type("App", (), {"consumer_generation_id": 7})()
    order = PartitionOrder()
    order.processed(seen, 11, generation=7)
    order.processed(silent, 99, generation=6)  # an earlier generation says nothing
    assert acking._positions(consumer, order, {"in"}) == {seen: 12, silent: 40, unknown: None}


def _group_resumes_at(monkeypatch: pytest.MonkeyPatch, start: int | Exception) -> list:
    """The broker says the group resumes every partition at `start` (or fails with it)."""
    asked: list = []

    async def starts(consumer, tps) -> dict:
        asked.append(list(tps))
        if isinstance(start, Exception):
            raise start
        return {tp: start for tp in tps}

    monkeypatch.setattr(acking, "group_start_offsets", starts)
    return asked


def test_a_first_record_before_faust_knows_the_committed_offset_is_checked_against_the_broker(
    monkeypatch,
):
    """Faust resumes a new assignment before it seeks it to the committed offset (5 here), so
    8 can come first: taken as the start, 5..7 would count as seen and never be processed."""
    asked = _group_resumes_at(monkeypatch, 5)
    stream, consumer = stream_of("guarded-s", [8, 5, 6, 7, 8, 9], committed=None)
    assert run(stream) == [5, 6, 7, 8, 9]
    assert consumer.seeks == [(TP("guarded-s", 0), 5)]
    assert len(asked) == 1  # once per generation


@pytest.mark.parametrize("failure", [TimeoutError(), ConnectionRefusedError()], ids=repr)
def test_without_an_answer_from_the_broker_the_first_record_is_the_start(monkeypatch, failure):
    _group_resumes_at(monkeypatch, failure)
    stream, consumer = stream_of("guarded-t", [8, 9], committed=None)
    assert run(stream) == [8, 9]
    assert consumer.seeks == []


class AssignedConsumer:
    """A consumer holding three partitions of topic `t`."""

    def __init__(self) -> None:
        self.tps = {TP("t", p) for p in range(3)}

    def assignment(self) -> set[TP]:
        return self.tps


def test_one_ask_answers_every_partition_of_the_agent_once_per_generation(monkeypatch):
    asked = _group_resumes_at(monkeypatch, 7)
    starts = acking.GroupStarts(AssignedConsumer(), {"t"})

    async def answers() -> list:
        return [
            await starts.of(TP("t", 0), 9, 1),
            await starts.of(TP("t", 2), 9, 1),
            await starts.of(TP("t", 1), 9, 2),  # a new generation asks again
        ]

    assert asyncio.run(answers()) == [7, 7, 7]
    assert [len(tps) for tps in asked] == [3, 3]


def test_no_answer_is_not_asked_for_again_in_the_same_generation(monkeypatch):
    asked = _group_resumes_at(monkeypatch, TimeoutError())
    starts = acking.GroupStarts(AssignedConsumer(), {"t"})

    async def answers() -> list:
        return [await starts.of(TP("t", p), 9, 1) for p in range(3)]

    assert asyncio.run(answers()) == [None, None, None]
    assert len(asked) == 1
