"""The risk stage: risk signals (tables/risk/signals.py) -> per-service risk scores and
deployment scorecards, in event time.

The `risk` agent consumes the internal `risk_signals` topic (key: subject, a service name or
an aggregate `repo:` / `cluster:` / `account:` id) and holds one table keyed by subject
(value: `model.new_subject`). The runtime's risk clock (app/runtime/risk_clock.py) tells the
stage how far it may run, so the outputs do not depend on how the signals of several
producers interleave:
- a signal is held in its subject (`pend`, sorted by time and id, then spill records) until
  the clock passes it (`receive`);
- a subject whose next held signal or timer the clock passed runs up to the clock
  (`run_until`, `_run`): held signals and timers in time order (a timer due before a signal's
  time first, at equal times the signal), each timer at its own due time. Applying a signal is
  a commutative merge (folding.py), so what a subject does depends only on its signals.

A subject timer (`_advance`) evaluates the dirty subject at its clock (evaluation.py: its
scorecards, then its score on `risk` when it says something new), then, while something
decays or slides out of a window, on the `check_interval_ms` grid, else at the next period
boundary (timers.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from app.model.outputs import Output
from app.runtime import spill
from app.runtime.due_heap import DueHeap
from app.runtime.staged import StagedState
from tables.risk.evaluation import Evaluator
from tables.risk.folding import apply_signal
from tables.risk.model import CATEGORIES, RiskConfig, new_subject
from tables.risk.timers import timer_due, wake_before

__all__ = ["CATEGORIES", "RiskConfig", "RiskSchedule", "RiskStage"]

#: Most signals a subject holds. Beyond it the oldest are applied at once, without waiting for
#: the clock (the scores then follow the arrival order again): a producer far behind the others
#: must not grow the state without bound.
MAX_HELD_SIGNALS = 20_000
#: Held signals kept in the subject record itself (the earliest ones); later ones wait in spill
#: records of `SPILL_BUCKET_MS` of event time each (`<subject>|~held|<bucket>`), so a subject
#: record stays small (a changelog record must stay well under Kafka's 1 MB) and a held signal
#: costs one small record write, not a rewrite of everything held.
INLINE_HELD = 50
SPILL_BUCKET_MS = 10_000
#: Most signals in one spill record (~600 bytes each): beyond, the oldest held signals up to
#: its own oldest are applied at once (a scan listing thousands of findings at one instant).
SPILL_BUCKET_MAX = 1_000


class RiskSchedule(DueHeap):
    """In-memory min-heap of (due, subject), rebuilt from the table."""

    @classmethod
    def rebuild(cls, items: Iterable[tuple[str, Any]]) -> RiskSchedule:
        """A schedule from `(key, value)` items of the risk table."""
        schedule = cls()
        for key, value in items:
            if (
                isinstance(value, dict)
                and value.get("t") == "risk"
                and isinstance(value.get("due"), int)
            ):
                schedule.push(value["due"], key)
        return schedule


def _load(state: StagedState, key: str) -> dict[str, Any] | None:
    """A private copy of a stored value (StagedState hands out the stored object itself)."""
    value = state.get(key)
    return orjson.loads(orjson.dumps(value)) if isinstance(value, dict) else None


def _first_time(pend: list[dict[str, Any]] | None) -> int | None:
    return int(pend[0]["time_ms"]) if pend else None


def _held_order(signal: Mapping[str, Any]) -> tuple[int, str]:
    return int(signal["time_ms"]), str(signal["id"])


#: Where a subject holds its signals (app/runtime/spill.py): `pend`, then
#: `<subject>|~held|<bucket>`.
HELD = spill.Layout(inline="pend", items="s", kind="risk_held", time="time_ms", order=_held_order)


def _spill_prefix(subject: str) -> str:
    return f"{subject}|~held"


def _limits() -> tuple[int, int, int]:
    return INLINE_HELD, SPILL_BUCKET_MS, SPILL_BUCKET_MAX


class RiskStage:
    """Per-subject risk state, scores and scorecards over staged state."""

    def __init__(self, config: RiskConfig | None = None, catalogue: Any = None) -> None:
        self.config = config or RiskConfig()
        services = getattr(catalogue, "services", None) or []
        #: service name -> catalogue entry (criticality, exposure, owner); beats signal info.
        self.services: dict[str, dict[str, Any]] = {}
        for entry in services:
            if isinstance(entry, dict) and entry.get("name"):
                self.services.setdefault(str(entry["name"]), entry)
        #: signals, too_old, overflow, emitted, scorecards.
        self.stats: Counter[str] = Counter()
        self._evaluator = Evaluator(self.config, self.services, self.stats)

    # ---- entry points (app/runtime/risk_clock.py calls them) ---------------------------

    def receive(
        self,
        signal: Mapping[str, Any],
        state: StagedState,
        schedule: RiskSchedule,
        clock: int | None = None,
    ) -> list[Output]:
        """Hold a signal in its subject until the clock passes it (applied once per id).
        Beyond `MAX_HELD_SIGNALS` the oldest held signals are applied at once. A signal the
        `clock` passed already finds its subject run up to the clock."""
        outputs: list[Output] = []
        key = str(signal["service"])
        stored = state.get(key)
        if isinstance(stored, dict):
            # Only `pend`, `spill` and top-level fields change here: a shallow copy will do.
            st = {
                **stored,
                "pend": list(stored.get("pend") or []),
                "spill": list(stored.get("spill") or []),
            }
        else:
            st = new_subject(key, str(signal.get("entity_type") or "service"))
        self.stats["signals"] += 1
        if clock is not None and int(signal["time_ms"]) <= clock:
            wake_before(st, clock + 1, self.config)
        prefix = _spill_prefix(key)
        until = spill.add(state, prefix, st, dict(signal), HELD, _limits())
        excess = spill.count(st, HELD) - MAX_HELD_SIGNALS
        if excess > 0:
            until = max(until or 0, spill.nth_time(state, prefix, st, excess, HELD))
        if until is not None:
            before = spill.count(st, HELD)
            st = orjson.loads(orjson.dumps(st))  # _run changes nested values
            self._run(key, st, until, outputs, state=state)
            self.stats["overflow"] += before - spill.count(st, HELD)
        self._set_due(st, key, schedule)
        state[key] = st
        return outputs

    def run_until(self, clock: int, state: StagedState, schedule: RiskSchedule) -> list[Output]:
        """Run every subject whose next held signal or timer is due by `clock` up to it."""
        outputs: list[Output] = []
        while (entry := schedule.pop_due(clock)) is not None:
            due, key = entry
            st = _load(state, key)
            if st is None or st.get("due") != due:
                continue  # stale: the timer moved
            st.setdefault("pend", [])
            self._run(key, st, clock, outputs, state=state)
            self._set_due(st, key, schedule)
            state[key] = st
        return outputs

    def finish(
        self, state: StagedState, schedule: RiskSchedule, newest: int | None
    ) -> list[Output]:
        """End of input (offline): run each subject up to `newest - 1` (the newest time the
        producers reported), then apply the signals still held (timers between them fire)
        and evaluate what they changed at its own clock."""
        outputs: list[Output] = []
        for due, key in schedule.drain():
            st = _load(state, key)
            if st is None or st.get("due") != due:
                continue
            st.setdefault("pend", [])
            if newest is not None:
                self._run(key, st, newest - 1, outputs, state=state)
            self._run(key, st, math.inf, outputs, final=True, state=state)
            self._set_due(st, key, schedule)
            state[key] = st
        return outputs

    @staticmethod
    def schedule_of(items: Iterable[tuple[str, Any]]) -> RiskSchedule:
        """The timer schedule of these risk table records."""
        return RiskSchedule.rebuild(items)

    def current(
        self, st: Mapping[str, Any] | None, state: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """A copy of a subject's state with its held signals applied (not evaluated): what
        the gate judges, so a deployment is judged on everything received so far. `state`:
        the risk table, to read the spilled ones too."""
        if st is None:
            return None
        view = orjson.loads(orjson.dumps(st))
        prefix = _spill_prefix(str(view["subject"]))
        held = list(view.get("pend") or []) + spill.spilled_items(state, prefix, view, HELD)
        for signal in held:
            apply_signal(view, signal, self.config, self.services, self.stats)
        view.update(pend=[], spill=[], spilled=0)
        return view

    # ---- running a subject -----------------------------------------------------------

    def _run(
        self,
        key: str,
        st: dict[str, Any],
        clock: int | float,
        outputs: list[Output],
        final: bool = False,
        state: StagedState | None = None,
    ) -> None:
        """Apply the subject's held signals and fire its timers up to `clock`, in time order
        (a timer due before a signal's time first, at equal times the signal), each timer at
        its own due time: the result depends on the signals, not on how the clock stepped.
        `final`: after the last held signal only what it changed is evaluated (no timers).
        `state`: the risk table, to bring spilled signals back as the held ones run out."""
        while True:
            if state is not None:
                spill.refill(state, _spill_prefix(key), st, HELD)
            pend = st["pend"]
            timer = timer_due(st, self.config)
            nxt = pend[0]["time_ms"] if pend else None
            if nxt is not None and nxt <= clock and (timer is None or timer >= nxt):
                wake_before(st, nxt, self.config)
                if apply_signal(st, pend.pop(0), self.config, self.services, self.stats):
                    st["dirty"] = True
            elif final and not pend:
                if st["dirty"]:
                    self._evaluator.evaluate_dirty(key, st, outputs)
                return
            elif timer is not None and timer <= clock:
                self._advance(key, st, timer, outputs)
            else:
                return

    def _advance(self, key: str, st: dict[str, Any], at: int, outputs: list[Output]) -> None:
        """Fire the subject's timer due at `at`."""
        if st["dirty"]:
            self._evaluator.evaluate_dirty(key, st, outputs)
        check = self.config.check_interval_ms
        grid = at // check * check
        if st["eval"] is not None and grid > st["eval"]:
            self._evaluator.evaluate(key, st, grid, "decay", outputs)

    def _set_due(self, st: dict[str, Any], key: str, schedule: RiskSchedule) -> None:
        """Schedule the subject at its next timer or held signal, whichever is first."""
        dues = [
            d for d in (timer_due(st, self.config), _first_time(st.get("pend"))) if d is not None
        ]
        due = min(dues) if dues else None
        if due is not None and due != st.get("due"):
            schedule.push(due, key)
        st["due"] = due
