"""An agent's events taken straight from its channel, as Faust's stream iterator hands them out.

Faust's iterator (`Stream._c_aiter`) yields to the event loop before every event and makes
each one the stream's current event: ~5 % of a worker's CPU for agents that take what is
buffered in batches. `ChannelEvents` does for each event what that iterator does, without the
per-event round trip through the loop: it skips an event fetched before a rebalance (flow
stopped, or an older consumer generation: the new assignment reads it again), tracks its
message as unacknowledged, and calls the stream sensors. Acks stay with `Stream.ack`.
"""

from __future__ import annotations

from typing import Any


class ChannelEvents:
    """The events of one agent's stream, taken from its channel's buffer."""

    def __init__(self, stream: Any) -> None:
        app = stream.app
        self._stream = stream
        self._app = app
        self._queue = stream.channel.queue
        self._flow_active = app.flow_control.is_active
        self._acking_topics = app.topics.acking_topics
        self._add_unacked = app.consumer.unacked.add
        self._on_message_in = stream._on_message_in
        self._on_stream_event_in = stream._on_stream_event_in

    def buffered(self) -> bool:
        """Whether an event is waiting in the buffer."""
        return not self._queue.empty()

    async def next(self) -> Any | None:
        """The next event to process, waiting for one; None once the stream stops (Faust
        throws StopAsyncIteration into the channel when its agent stops)."""
        queue = self._queue
        while not self._stream.should_stop:
            try:
                # Either raises what was thrown into the channel (ThrowableQueue) first.
                event = queue.get_nowait() if not queue.empty() else await queue.get()
            except StopAsyncIteration:
                return None
            if self._admit(event):
                return event
        return None

    def _admit(self, event: Any) -> bool:
        message = event.message
        if not self._flow_active() or message.generation_id != self._app.consumer_generation_id:
            return False  # fetched before a rebalance: read again from the committed offset
        tp, offset = message.tp, message.offset
        if message.topic in self._acking_topics and not message.tracked:
            message.tracked = True
            self._add_unacked(message)
            self._on_message_in(tp, offset, message)
        self._on_stream_event_in(tp, offset, self._stream, event)
        return True
