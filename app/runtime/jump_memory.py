"""What an agent remembers of its recent seeks back over jumps, and of the broker's answers about
them (used by app/runtime/acking.py).

Faust hands over a whole fetch before it fetches from a new position, so after a seek back the
rest of the fetch that came before it keeps arriving; with this memory those records cost
nothing each, and the broker's answer about a jump settles it whenever its record comes.
"""

from __future__ import annotations

import time
from typing import Any

#: After a partition was sought back to an offset, further records past it are not sought
#: back again for this long (seconds): they were fetched before the seek. Faust delivers a
#: whole fetch (thousands of records of a small-record topic) before it fetches from the new
#: position, and a seek per record (~20 ms each, through the consumer's thread) held an agent
#: for minutes in a chaos run. They are dropped unacked meanwhile, to be read again.
RESEEK_S = 1.0
#: After the broker said that it serves a jump's missing offsets, the same jump seen twice is
#: not asked about again for this long (seconds): each ask opens a client (~100 ms).
RECHECK_S = 10.0


class JumpMemory:
    """An agent's recent seeks back and broker checks, per partition, so that the records of
    a fetch that came before a seek cost nothing each (see `RESEEK_S`)."""

    def __init__(self) -> None:
        #: the first missing offset last reported, per partition (it is logged once)
        self.reported: dict[Any, int | None] = {}
        self._sought: dict[Any, tuple[Any, int, float]] = {}
        #: tp -> (generation, first missing offset, the first offset the broker serves from
        #: it, None if it did not answer in time, and when it was asked)
        self._checked: dict[Any, tuple[Any, int, int | None, float]] = {}

    def sought_lately(self, tp: Any, generation: Any, first_missing: int) -> bool:
        """Whether `tp` was sought back to `first_missing` in `generation` within `RESEEK_S`."""
        return _lately(self._sought.get(tp), generation, first_missing, RESEEK_S)

    def seek(self, tp: Any, generation: Any, first_missing: int) -> None:
        """`tp` was just sought back to `first_missing`."""
        self._sought[tp] = (generation, first_missing, time.monotonic())

    def stale(self, message: Any, first_missing: int, twice: bool) -> bool:
        """Whether a record after a jump (`twice`: seen twice) was fetched before the last
        seek back over it: its partition was sought there lately and, if the jump is seen
        twice, the broker said lately that it serves the missing offsets. The first record the
        broker serves after missing offsets is never stale: it settles them (`gap_ends_at`)."""
        tp, generation = message.tp, message.generation_id
        if not self.sought_lately(tp, generation, first_missing):
            return False
        if self.gap_ends_at(tp, generation, first_missing) == message.offset:
            return False
        return not twice or self.checked_lately(tp, generation, first_missing)

    def checked_lately(self, tp: Any, generation: Any, first_missing: int) -> bool:
        """Whether the broker was asked about `first_missing` within `RECHECK_S`."""
        return _lately(self._checked.get(tp), generation, first_missing, RECHECK_S)

    def check(self, tp: Any, generation: Any, first_missing: int, first: int | None) -> None:
        """The broker just said that it serves `first` first from `first_missing` of `tp`
        (None: it did not answer in time)."""
        self._checked[tp] = (generation, first_missing, first, time.monotonic())

    def gap_ends_at(self, tp: Any, generation: Any, first_missing: int) -> int | None:
        """The first offset after `first_missing` the broker serves, if it said in this
        generation that it serves nothing from `first_missing` up to it (offsets that do not
        exist never appear later: the answer holds however old it is)."""
        checked = self._checked.get(tp)
        if checked is None or checked[:2] != (generation, first_missing):
            return None
        first = checked[2]
        return first if first is not None and first > first_missing else None


def _lately(seen: tuple | None, generation: Any, first_missing: int, within_s: float) -> bool:
    """Whether `seen` (generation, first missing offset, ..., when) is about this jump and
    younger than `within_s`."""
    return (
        seen is not None
        and seen[:2] == (generation, first_missing)
        and time.monotonic() - seen[-1] < within_s
    )
