"""The risk stage: risk signals (tables/risk/signals.py) -> per-service risk scores and
deployment scorecards, in event time.

The `risk` agent consumes the internal `risk_signals` topic (key: subject, a service name or
an aggregate `repo:` / `cluster:` / `account:` id) and holds one table keyed by subject
(value: `risk_model.new_subject`). Per partition it also keeps `~wm|<partition>`: its clock.

Signals reach a partition from every `vigil.events` partition (the producers), each in its own
order, so the order they interleave in differs from run to run. To give the same outputs
whatever it is, the stage works like the alert stage over the partition clock:
- every producer sends heartbeats (`tick` at each `check_interval_ms` boundary its partition
  clock crosses, `clock` on each of its worker's clock ticks) saying its clock reached t: it
  has sent every signal older than that. The partition clock is the lowest of them (the
  producers as the sources of app/runtime/partition_clock.py, with its idle and pause rules);
- a signal is held in its subject (`pend`, sorted by time and id) until the clock passes it;
- a subject whose next held signal or timer the clock passed runs up to the clock (`_run`):
  held signals and timers in time order (a timer due before a signal's time first, at equal
  times the signal), each timer at its own due time. Applying a signal is a commutative merge
  (max/min of times, the values of the latest `(time, id)`), so what a subject does depends
  only on its signals.
Without producers (a test feeding one ordered stream) every signal moves the clock to its time.

A subject timer (`_advance`) evaluates the dirty subject at its clock: pending deployments get
their scorecard (`scorecards`, key service), then the score is emitted on `risk` (key subject)
when it is the first non-zero score, moved by more than `emit_delta`, has a new top
contributing category after new signals, or an `emit_period_ms` boundary passed since the last
emission while the score (or the last one) is non-zero. Then,
while something decays or slides out of a window, the subject is re-evaluated on the
`check_interval_ms` grid (decay and periodic emissions), else at the next period boundary.

Outputs: `risk`: `{id, entity, entity_type, score, previous_score, reason
(first|change|decay|periodic), contributions [{factor, points, count, details}], factors,
time, time_ms}`; the contributions' points add up to `score`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from app.events import SEVERITY_RANK, event_id, format_time
from app.outputs import Output
from app.runtime import spill
from app.runtime.due_heap import DueHeap
from app.runtime.staged import StagedState, owned_by
from tables.risk.model import (
    CATEGORIES,
    RiskConfig,
    assess,
    decay_curve,
    deployment_time,
    item_anchor,
    item_open,
    item_points,
    new_subject,
)
from tables.risk.scorecards import scorecard
from tables.risk.signals import is_heartbeat

__all__ = ["CATEGORIES", "RiskConfig", "RiskSchedule", "RiskStage", "watermark_key"]

#: signal kind -> (category, mode): `hold` items count while open; `decay` ones also decay
#: from the time they closed or happened.
ITEM_KINDS: dict[str, tuple[str, str]] = {
    "finding": ("findings", "hold"),
    "incident": ("incidents", "decay"),
    "violation": ("drift", "decay"),
    "drift": ("drift", "hold"),
    "anomaly": ("anomalies", "decay"),
    "ci": ("ci", "hold"),
}
_TERMINAL_RANK = {"cancelled": 0, "success": 1, "failure": 2}
_DEPLOY_ATTRS = {
    "env": "environment",
    "prod": "production",
    "sha": "commit_sha",
    "branch": "branch",
    "artifact": "artifact",
}
_MAX_RUNS = 1000
_MAX_DEPLOYS = 500
_MAX_INCIDENTS = 500
_MAX_CHANGES = 500


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

#: Longest sleep of a subject whose score cannot change (`_next_audible`), in check intervals
#: (about ten years with the defaults): past it, the subject is evaluated once and sleeps again.
_MAX_SLEEP_STEPS = 2**20


def watermark_key(partition: int) -> str:
    """The state key of a partition's watermark."""
    return f"~wm|{partition}"


class RiskSchedule(DueHeap):
    """In-memory min-heap of (due, subject) for one partition, rebuilt from the table."""

    @classmethod
    def rebuild(cls, items: Iterable[tuple[str, Any]]) -> RiskSchedule:
        """A schedule from one partition's `(key, value)` items of the risk table."""
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


def _later(candidate: list[Any], current: list[Any] | None) -> bool:
    return current is None or candidate > current


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

    def __init__(
        self,
        config: RiskConfig | None = None,
        catalogue: Any = None,
        producers: int | Iterable[int] | None = None,
    ) -> None:
        self.config = config or RiskConfig()
        services = getattr(catalogue, "services", None) or []
        #: service name -> catalogue entry (criticality, exposure, owner); beats signal info.
        self.services: dict[str, dict[str, Any]] = {}
        for entry in services:
            if isinstance(entry, dict) and entry.get("name"):
                self.services.setdefault(str(entry["name"]), entry)
        #: The `vigil.events` partitions whose heartbeats make the clock (a count: all of
        #: them; None: every signal moves the clock to its own time, for a single ordered
        #: producer such as a test).
        if isinstance(producers, int):
            producers = range(producers)
        self.producers = None if producers is None else tuple(str(p) for p in producers)
        self._schedules: dict[int, RiskSchedule] = {}
        #: signals, too_old, emitted, scorecards, ticks.
        self.stats: Counter[str] = Counter()

    # ---- entry points ----------------------------------------------------------------

    def on_signal(
        self,
        signal: Mapping[str, Any],
        partition: int,
        state: StagedState,
    ) -> list[Output]:
        """Take in one risk signal or heartbeat read from `partition`, then run every
        subject up to the partition clock."""
        outputs: list[Output] = []
        schedule = self.schedule(partition, state)
        clock = self._advance_clock(signal, partition, state)
        if is_heartbeat(signal):
            self.stats["ticks"] += 1
        else:
            self._receive(signal, state, schedule, outputs, clock)
        if clock is not None:
            self._fire(schedule, clock, state, outputs)
        return outputs

    def _receive(
        self,
        signal: Mapping[str, Any],
        state: StagedState,
        schedule: RiskSchedule,
        outputs: list[Output],
        clock: int | None = None,
    ) -> None:
        """Hold a signal in its subject until the clock passes it (applied once per id).
        Beyond `MAX_HELD_SIGNALS` the oldest held signals are applied at once. A signal the
        `clock` passed already finds its subject run up to the clock."""
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
            self._wake_before(st, clock + 1)
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

    def on_tick(
        self, now_ms: int, state: StagedState, partition: int | None = None
    ) -> list[Output]:
        """Move the clock of `partition` (None: of every partition with a schedule) to
        `now_ms - 1` (event time), whatever the producers reported, and run what is due.

        Faust writes tables only inside a stream event: the risk agent moves its clocks with
        heartbeat signals (`on_signal`); this is for tests and tools."""
        outputs: list[Output] = []
        partitions = sorted(self._schedules) if partition is None else [partition]
        for number in partitions:
            schedule = self.schedule(number, state)
            key = watermark_key(number)
            record = dict(state.get(key) or {"t": "wm", "wm": None})
            clock = record.get("clock", record.get("wm"))
            clock = now_ms - 1 if clock is None else max(clock, now_ms - 1)
            newest = record.get("wm")
            record.update(clock=clock, wm=now_ms if newest is None else max(newest, now_ms))
            state[key] = record
            self._fire(schedule, clock, state, outputs)
        return outputs

    def flush(self, state: StagedState, partition: int) -> list[Output]:
        """End of input (offline): every producer is done, so run each subject up to the
        newest time reported, then apply the signals still held (timers between them fire)
        and evaluate what they changed at its own clock."""
        outputs: list[Output] = []
        schedule = self.schedule(partition, state)
        newest = (state.get(watermark_key(partition)) or {}).get("wm")
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
            self._apply(view, signal)
        view.update(pend=[], spill=[], spilled=0)
        return view

    def schedule(self, partition: int, state: StagedState) -> RiskSchedule:
        """The timer schedule of a partition, rebuilt from the table (with the writes staged
        so far) when first needed."""
        schedule = self._schedules.get(partition)
        if schedule is None:
            schedule = RiskSchedule.rebuild(owned_by(state.items(), partition))
            self._schedules[partition] = schedule
        return schedule

    def forget_schedules(self) -> None:
        """Drop the in-memory schedules (after a rebalance or a failed send)."""
        self._schedules.clear()

    # ---- time ------------------------------------------------------------------------

    def _advance_clock(
        self, signal: Mapping[str, Any], partition: int, state: StagedState
    ) -> int | None:
        """The partition clock after this signal (None: not started). With producers, only
        their heartbeats move it: a producer's entry is the newest clock it reported and
        whether it declared itself idle (every source of its partition idle: it has nothing
        to send). The clock waits until every producer was
        heard from, then is one millisecond before the lowest clock among the producers not
        idle (the newest clock when all are): they have all sent every signal older than
        that. A producer that is merely slow (a backlog) holds it; only a declaration makes it
        stop. Without producers, every signal moves the clock to just before its own time."""
        key = watermark_key(partition)
        record = state.get(key)
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
        state[key] = record
        return clock

    def _fire(
        self, schedule: RiskSchedule, clock: int, state: StagedState, outputs: list[Output]
    ) -> None:
        while (entry := schedule.pop_due(clock)) is not None:
            due, key = entry
            st = _load(state, key)
            if st is None or st.get("due") != due:
                continue  # stale: the timer moved
            st.setdefault("pend", [])
            self._run(key, st, clock, outputs, state=state)
            self._set_due(st, key, schedule)
            state[key] = st

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
            timer = self._timer_due(st)
            nxt = pend[0]["time_ms"] if pend else None
            if nxt is not None and nxt <= clock and (timer is None or timer >= nxt):
                self._wake_before(st, nxt)
                if self._apply(st, pend.pop(0)):
                    st["dirty"] = True
            elif final and not pend:
                if st["dirty"]:
                    self._evaluate_dirty(key, st, outputs)
                return
            elif timer is not None and timer <= clock:
                self._advance(key, st, timer, outputs)
            else:
                return

    def _next_audible(self, st: dict[str, Any], first: int) -> int:
        """The first step of the evaluation grid from `first` on at which an evaluation
        emits, changes what the subject's windows hold, or ends the decay (no timer follows).

        Between two such steps (and without new signals, which make the subject dirty) a
        score only decays: an evaluation there emits nothing, so the subject sleeps through
        them. Found by doubling then bisection, so the work grows with the log of a quiet
        stretch; the emissions are those of an evaluation at every step."""
        cfg = self.config
        check = cfg.check_interval_ms
        upcoming = [at for at in self._window_instants(st) if at > st["eval"]]
        bound = ((min(upcoming) - 1) // check + 1) * check if upcoming else None
        emitted = st["emit"]["score"]
        windowed = self._windowed_at(st, first)
        decaying = _decaying_items(st)
        score_at = decay_curve(st, first, cfg)

        def audible(at: int) -> bool:
            if bound is not None and at >= bound:
                return True
            if not windowed and not _decays_at(decaying, at, cfg):
                return True
            return abs(score_at(at) - emitted) > cfg.emit_delta

        if audible(first):
            return first
        low, span = first, check  # audible(low) is false
        while not audible(low + span):
            low, span = low + span, span * 2
            if span > _MAX_SLEEP_STEPS * check:
                return low + span
        high = low + span
        while high - low > check:
            middle = low + (high - low) // 2 // check * check
            low, high = (low, middle) if audible(middle) else (middle, high)
        return high

    def _wake_before(self, st: dict[str, Any], at: int) -> None:
        """A sleeping subject (`_next_audible`) gets a signal at `at`: its grid moves to the
        last step before `at` that it slept through, as if each had been evaluated."""
        memo = st.get("wake")
        if st["dirty"] or not memo or memo[0] != st["eval"]:
            return
        check = self.config.check_interval_ms
        slept = min(memo[1] - check, (at - 1) // check * check)
        if slept > st["eval"]:
            st["eval"] = slept

    def _window_instants(self, st: Mapping[str, Any]) -> list[int]:
        """When a CI run or a deployment leaves its scoring window, or is dropped from the
        subject (`_prune`): the instants at which a score may move other than by decay."""
        cfg = self.config
        instants = []
        for run in st["runs"].values():
            instants += [run["t"] + cfg.ci_window_ms, run["t"] + cfg.ci_window_ms + 1]
        for deploy in st["deploys"].values():
            instants.append(deployment_time(deploy) + cfg.cfr_window_ms)
            instants.append(_deploy_kept_until(deploy, cfg) + 1)
        return instants

    def _windowed_at(self, st: Mapping[str, Any], at: int) -> bool:
        """Whether the subject still keeps a CI run or a deployment after `_prune` at `at`
        (its score may then still change without decay: `_changing`)."""
        cfg = self.config
        return any(run["t"] >= at - cfg.ci_window_ms for run in st["runs"].values()) or any(
            _deploy_kept_until(deploy, cfg) >= at for deploy in st["deploys"].values()
        )

    def _advance(self, key: str, st: dict[str, Any], at: int, outputs: list[Output]) -> None:
        """Fire the subject's timer due at `at`."""
        if st["dirty"]:
            self._evaluate_dirty(key, st, outputs)
        check = self.config.check_interval_ms
        grid = at // check * check
        if st["eval"] is not None and grid > st["eval"]:
            self._evaluate(key, st, grid, "decay", outputs)

    def _timer_due(self, st: dict[str, Any]) -> int | None:
        """When the subject must be evaluated next without new signals."""
        cfg = self.config
        if st["dirty"]:
            return st["clock"]
        if st["eval"] is None:
            return None
        memo = st.get("wake")  # a sleeping subject's wake-up (cleared by every evaluation)
        if memo and memo[0] == st["eval"]:
            return memo[1]
        if self._changing(st):
            step = (st["eval"] // cfg.check_interval_ms + 1) * cfg.check_interval_ms
            if cfg.emit_period_ms or st["emit"] is None:
                return step
            st["wake"] = [st["eval"], self._next_audible(st, step)]
            return st["wake"][1]
        if cfg.emit_period_ms and st["emit"] is not None and st["emit"]["score"] > 0:
            return (st["eval"] // cfg.emit_period_ms + 1) * cfg.emit_period_ms
        return None

    def _set_due(self, st: dict[str, Any], key: str, schedule: RiskSchedule) -> None:
        """Schedule the subject at its next timer or held signal, whichever is first."""
        dues = [d for d in (self._timer_due(st), _first_time(st.get("pend"))) if d is not None]
        due = min(dues) if dues else None
        if due is not None and due != st.get("due"):
            schedule.push(due, key)
        st["due"] = due

    def _changing(self, st: Mapping[str, Any]) -> bool:
        """Whether the score can move without new signals (decay, sliding windows)."""
        if st["runs"] or st["deploys"]:
            return True
        return _decays_at(_decaying_items(st), st["eval"], self.config)

    # ---- evaluation ------------------------------------------------------------------

    def _evaluate_dirty(self, key: str, st: dict[str, Any], outputs: list[Output]) -> None:
        at = st["clock"] if st["eval"] is None else max(st["clock"], st["eval"])
        st["dirty"] = False
        self._evaluate(key, st, at, "change", outputs, cards=True)

    def _evaluate(
        self,
        key: str,
        st: dict[str, Any],
        at: int,
        trigger: str,
        outputs: list[Output],
        cards: bool = False,
    ) -> None:
        cfg = self.config
        st.pop("wake", None)
        st["eval"] = at if st["eval"] is None else max(st["eval"], at)
        self._refresh_info(st)
        self._prune(st, at)
        if cards and st["type"] == "service":
            self._scorecards(key, st, at, outputs)
        assessment = assess(st, at, cfg)
        score = assessment.score
        last = st["emit"]
        reason = None
        if last is None:
            reason = "first" if score > 0 else None
        elif abs(score - last["score"]) > cfg.emit_delta:
            reason = trigger
        elif (
            trigger == "change"
            and score > 0
            and _top_factor(assessment.contributions) != _top_factor(last["contributions"])
        ):
            reason = trigger  # new signals changed what drives the score
        elif (
            cfg.emit_period_ms
            and (score > 0 or last["score"] > 0)
            and at // cfg.emit_period_ms > last["time"] // cfg.emit_period_ms
        ):
            reason = "periodic"
        if reason is None:
            return
        record = {
            "id": event_id("risk", key, at, score),
            "entity": key,
            "entity_type": st["type"],
            "score": score,
            "previous_score": last["score"] if last else None,
            "reason": reason,
            "contributions": assessment.contributions,
            "factors": assessment.factors,
            "time": format_time(at),
            "time_ms": at,
        }
        outputs.append(Output("risk", key, record))
        st["emit"] = {
            "score": score,
            "time": at,
            "contributions": [
                {"factor": c["factor"], "points": c["points"]} for c in assessment.contributions
            ],
        }
        self.stats["emitted"] += 1

    def _scorecards(self, key: str, st: dict[str, Any], at: int, outputs: list[Output]) -> None:
        pending = sorted(
            (d["first"], dkey) for dkey, d in st["deploys"].items() if not d.get("card")
        )
        for _, dkey in pending:
            deploy = st["deploys"][dkey]
            signal = deploy["sig"]
            merged = {
                **signal["details"],
                "state": deploy.get("state") or signal["details"].get("state"),
            }
            for attr, name in _DEPLOY_ATTRS.items():
                if deploy.get(attr) is not None:
                    merged[name] = deploy[attr]
            card_input = {**signal, "details": merged, "service": key}
            card = scorecard(st, card_input, self.config, now_ms=at)
            outputs.append(Output("scorecards", key, card))
            st["last_scorecard"] = {
                k: card.get(k) for k in ("decision", "score", "time", "deployment")
            }
            deploy["card"] = True
            self.stats["scorecards"] += 1

    def _refresh_info(self, st: dict[str, Any]) -> None:
        entry = self.services.get(st["subject"]) if st["type"] == "service" else None
        if entry is not None:
            st["info"] = {
                k: entry.get(k) for k in ("criticality", "exposure", "owner") if entry.get(k)
            }

    def _prune(self, st: dict[str, Any], at: int) -> None:
        cfg = self.config
        items = st["items"]
        for key in sorted(items):
            item = items[key]
            anchor = item_anchor(item)
            if not item_open(item) and (anchor is None or anchor < at - cfg.retention_ms):
                del items[key]
        if len(items) > cfg.max_items:

            def rank(key: str) -> tuple:
                item = items[key]
                return (item_open(item), item_points(item, at, cfg), item_anchor(item) or 0, key)

            for key in sorted(items, key=rank)[: len(items) - cfg.max_items]:
                del items[key]
        _trim(st["runs"], lambda r: r["t"], at - cfg.ci_window_ms, _MAX_RUNS)
        horizon = at - cfg.cfr_window_ms - cfg.incident_window_ms
        _trim(st["deploys"], _deploy_time, horizon, _MAX_DEPLOYS)
        _trim(st["incidents"], lambda t: t, horizon, _MAX_INCIDENTS)
        _trim(st["changes"], lambda c: c["t"], at - cfg.cfr_window_ms, _MAX_CHANGES)

    # ---- applying signals ------------------------------------------------------------

    def _horizon(self, kind: str) -> int:
        cfg = self.config
        if kind == "deployment":
            return cfg.cfr_window_ms + cfg.incident_window_ms
        if kind == "change":
            return cfg.cfr_window_ms
        return cfg.retention_ms

    def _apply(self, st: dict[str, Any], signal: Mapping[str, Any]) -> bool:
        """Fold one signal into its subject; False when it is too old to matter."""
        t = int(signal["time_ms"])
        kind = str(signal.get("kind"))
        clock = st["clock"]
        if clock is not None and t < clock - self._horizon(kind):
            self.stats["too_old"] += 1
            return False
        st["clock"] = t if clock is None else max(clock, t)
        ident = [t, str(signal["id"])]
        if (signal.get("criticality") or signal.get("exposure")) and _later(ident, st["info_at"]):
            st["info"] = {
                "criticality": signal.get("criticality"),
                "exposure": signal.get("exposure"),
            }
            st["info_at"] = ident
        self._refresh_info(st)
        details = signal.get("details") or {}
        if kind in ITEM_KINDS:
            self._apply_item(st, signal, kind, t, ident)
        if kind == "ci" and details.get("run_key"):
            run = {
                "t": t,
                "ok": signal.get("status") != "open",
                "n": details.get("name") or signal["key"],
                "sha": details.get("commit_sha"),
                "k": "run" if "|run|" in details["run_key"] else "job",
                "b": details.get("branch"),
                "i": ident,
            }
            current = st["runs"].get(details["run_key"])
            if current is None or _later(ident, current.get("i")):
                st["runs"][details["run_key"]] = run
        if self._is_incident(kind, signal):
            start = details.get("starts_ms")
            start = start if isinstance(start, int) else t
            st["incidents"][f"{kind}|{signal['key']}|{start}"] = start
        if kind == "deployment":
            self._apply_deployment(st, signal, t, ident)
        if kind == "change":
            for sha in {details.get("commit_sha"), details.get("merge_commit_sha")} - {None}:
                current = st["changes"].get(sha)
                if current is None or _later(ident, current.get("i")):
                    st["changes"][sha] = {"t": t, "i": ident, **details, "commit_sha": sha}
        return True

    def _is_incident(self, kind: str, signal: Mapping[str, Any]) -> bool:
        if kind == "anomaly":
            return True
        if kind not in ("incident", "violation") or signal.get("status") != "open":
            return False
        rank = SEVERITY_RANK.get(str(signal.get("severity")), 0)
        return rank >= SEVERITY_RANK[self.config.incident_min_severity]

    @staticmethod
    def _apply_item(
        st: dict[str, Any], signal: Mapping[str, Any], kind: str, t: int, ident: list[Any]
    ) -> None:
        category, mode = ITEM_KINDS[kind]
        key = f"{kind}|{signal['key']}"
        item = st["items"].get(key) or {
            "c": category,
            "m": mode,
            "o": None,
            "x": None,
            "tr": None,
            "p": 0.0,
            "pt": None,
            "dt": None,
        }
        status = signal.get("status")
        slot = {"open": "o", "closed": "x"}.get(str(status), "tr")
        item[slot] = t if item[slot] is None else max(item[slot], t)
        points = float(signal.get("points_input") or 0.0)
        # Points come from the latest open or transient signal; a close's points only stand
        # in until one arrives (time -1), so the result does not depend on arrival order.
        candidate = [-1 if status == "closed" else t, points, ident[1]]
        if _later(candidate, item["pt"]):
            item["p"], item["pt"] = points, candidate
        if _later(ident, item["dt"]):
            item["dt"] = ident
            item["sev"] = signal.get("severity")
            item["e"] = signal.get("entity")
            item["d"] = dict(signal.get("details") or {})
        st["items"][key] = item

    @staticmethod
    def _apply_deployment(
        st: dict[str, Any], signal: Mapping[str, Any], t: int, ident: list[Any]
    ) -> None:
        key = str(signal["key"])
        details = signal.get("details") or {}
        deploy = st["deploys"].get(key) or {
            "t0": t,
            "t": None,
            "state": None,
            "st": None,
            "card": False,
            "first": ident,
            "sig": None,
            "src": {},
        }
        deploy["t0"] = min(deploy["t0"], t)
        if deploy["sig"] is None or ident <= deploy["first"]:
            deploy["first"] = ident
            deploy["sig"] = {
                "key": key,
                "time_ms": t,
                "entity": signal.get("entity"),
                "details": dict(details),
            }
        state = details.get("state")
        if state in _TERMINAL_RANK:
            rank = [t, _TERMINAL_RANK[state]]
            if _later(rank, deploy["st"]):
                deploy["state"], deploy["t"], deploy["st"] = state, t, rank
        for attr, name in _DEPLOY_ATTRS.items():
            if details.get(name) is not None and _later(ident, deploy["src"].get(attr)):
                deploy[attr] = details[name]
                deploy["src"][attr] = ident
        st["deploys"][key] = deploy


def _decaying_items(st: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The subject's items whose points decay once closed (`m` decay), not open now."""
    return [
        item for item in st["items"].values() if item.get("m") == "decay" and not item_open(item)
    ]


def _decays_at(items: list[dict[str, Any]], at: int, config: RiskConfig) -> bool:
    """Whether any of these decaying items still has points at `at`."""
    return any(item_points(item, at, config) for item in items)


def _deploy_time(deploy: Mapping[str, Any]) -> int:
    """The time `_prune` keeps a deployment by."""
    return max(deploy["t0"], deploy.get("t") or 0)


def _deploy_kept_until(deploy: Mapping[str, Any], config: RiskConfig) -> int:
    """The last evaluation time at which `_prune` keeps a deployment."""
    return _deploy_time(deploy) + config.cfr_window_ms + config.incident_window_ms


def _trim(table: dict[str, Any], time_of, horizon: int, cap: int) -> None:
    """Drop entries older than `horizon`, then the oldest beyond `cap`."""
    for key in sorted(table):
        if time_of(table[key]) < horizon:
            del table[key]
    if len(table) > cap:
        for key in sorted(table, key=lambda k: (time_of(table[k]), k))[: len(table) - cap]:
            del table[key]


def _top_factor(contributions: list[dict[str, Any]]) -> str | None:
    """The category that contributes the most points (None when none does)."""
    if not contributions or contributions[0]["points"] <= 0:
        return None
    return contributions[0]["factor"]
