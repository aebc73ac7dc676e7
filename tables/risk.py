"""The risk stage: risk signals (tables/risk_signals.py) -> per-service risk scores and
deployment scorecards, in event time.

The `risk` agent consumes the internal `risk_signals` topic (key: subject, a service name or
an aggregate `repo:` / `cluster:` / `account:` id) and holds one table keyed by subject
(value: `risk_model.new_subject`). Per partition it also keeps `~wm|<partition>`: the highest
signal time seen (the partition watermark) and its offset marker.

Order of work for a signal at time t (`on_signal`):
1. if t is past the watermark, every subject timer due before t fires first (`t − 1` is the
   clock): everything up to the old watermark has arrived, so what a timer sees does not
   depend on the arrival order of signals with equal times;
2. the signal is applied to its subject (commutative merges: max/min of times, the values of
   the latest `(time, id)`), unless the subject's offset marker says it was applied already;
3. the subject is marked dirty with a timer at its clock.

A subject timer (`_advance`) evaluates the dirty subject at its clock: pending deployments get
their scorecard (`scorecards`, key service), then the score is emitted on `risk` (key subject)
when it is the first non-zero score, moved by more than `emit_delta`, or an `emit_period_ms`
boundary passed since the last emission while the score (or the last one) is non-zero. Then,
while something decays or slides out of a window, the subject is re-evaluated on the
`check_interval_ms` grid (decay and periodic emissions), else at the next period boundary.

Outputs: `risk`: `{id, entity, entity_type, score, previous_score, reason
(first|change|decay|periodic), contributions [{factor, points, count, details}], factors,
time, time_ms}`; the contributions' points add up to `score`.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from app.events import SEVERITY_RANK, event_id, format_time
from app.outputs import Output
from tables.risk_model import (
    CATEGORIES,
    RiskConfig,
    assess,
    item_anchor,
    item_open,
    item_points,
    new_subject,
)
from tables.scorecards import scorecard
from tables.staged import StagedState

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


def watermark_key(partition: int) -> str:
    """The state key of a partition's watermark."""
    return f"~wm|{partition}"


class RiskSchedule:
    """In-memory min-heap of (due, subject) for one partition, rebuilt from the table."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []

    def push(self, due: int, key: str) -> None:
        heapq.heappush(self._heap, (due, key))

    def pop_due(self, clock: int | float) -> tuple[int, str] | None:
        if self._heap and self._heap[0][0] <= clock:
            return heapq.heappop(self._heap)
        return None

    def drain(self) -> list[tuple[int, str]]:
        items, self._heap = sorted(self._heap), []
        return items

    def __len__(self) -> int:
        return len(self._heap)

    @classmethod
    def rebuild(cls, items: Iterable[tuple[str, Any]], partition: int) -> RiskSchedule:
        """A schedule from the `(key, value)` items of the risk table for `partition`."""
        schedule = cls()
        for key, value in items:
            if (
                isinstance(value, dict)
                and value.get("t") == "risk"
                and value.get("p") == partition
                and isinstance(value.get("due"), int)
            ):
                schedule.push(value["due"], key)
        return schedule


def _load(state: StagedState, key: str) -> dict[str, Any] | None:
    """A private copy of a stored value (StagedState hands out the stored object itself)."""
    value = state.get(key)
    return orjson.loads(orjson.dumps(value)) if isinstance(value, dict) else None


def _replayed(st: Mapping[str, Any], offset: int | None, ident: str) -> bool:
    if offset is None:
        return False
    if offset < st["_o"]:
        return True
    return offset == st["_o"] and ident in st["_oi"]


def _mark(st: dict[str, Any], offset: int | None, ident: str) -> None:
    if offset is None:
        return
    if offset > st["_o"]:
        st["_o"], st["_oi"] = offset, [ident]
    else:
        st["_oi"].append(ident)


def _later(candidate: list[Any], current: list[Any] | None) -> bool:
    return current is None or candidate > current


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
        self._schedules: dict[int, RiskSchedule] = {}
        #: signals, replayed, too_old, emitted, scorecards, ticks.
        self.stats: Counter[str] = Counter()

    # ---- entry points ----------------------------------------------------------------

    def on_signal(
        self,
        signal: Mapping[str, Any],
        partition: int,
        offset: int | None,
        state: StagedState,
    ) -> list[Output]:
        """Take in one risk signal (or a `tick`) read at (partition, offset)."""
        outputs: list[Output] = []
        time_ms = int(signal["time_ms"])
        schedule = self.schedule(partition, state)
        self._advance_watermark(time_ms, partition, offset, state, schedule, outputs)
        if signal.get("kind") == "tick":
            self.stats["ticks"] += 1
            return outputs
        key = str(signal["service"])
        st = _load(state, key) or new_subject(
            key, str(signal.get("entity_type") or "service"), partition
        )
        if _replayed(st, offset, str(signal["id"])):
            self.stats["replayed"] += 1
            return outputs
        _mark(st, offset, str(signal["id"]))
        self.stats["signals"] += 1
        if self._apply(st, signal):
            st["dirty"] = True
            self._set_due(st, key, schedule)
        state[key] = st
        return outputs

    def on_tick(
        self, now_ms: int, state: StagedState, partition: int | None = None
    ) -> list[Output]:
        """Move the clock of `partition` (None: of every partition with a schedule) to `now_ms`
        (event time) and fire what is due before it.

        Faust writes tables only inside a stream event: call it from the risk agent, e.g. on a
        `tick` signal (risk_signals.tick_signal), which `on_signal` treats the same way."""
        outputs: list[Output] = []
        partitions = sorted(self._schedules) if partition is None else [partition]
        for number in partitions:
            schedule = self.schedule(number, state)
            self._advance_watermark(now_ms, number, None, state, schedule, outputs)
        return outputs

    def flush(self, state: StagedState, partition: int) -> list[Output]:
        """End of input (offline): evaluate every dirty subject at its own clock."""
        outputs: list[Output] = []
        schedule = self.schedule(partition, state)
        pending = schedule.drain()
        for due, key in pending:
            st = _load(state, key)
            if st is None or st.get("due") != due or not st.get("dirty"):
                if st is not None and st.get("due") == due:
                    schedule.push(due, key)
                continue
            self._evaluate_dirty(key, st, outputs)
            self._set_due(st, key, schedule)
            state[key] = st
        return outputs

    def schedule(self, partition: int, state: StagedState) -> RiskSchedule:
        """The timer schedule of a partition, rebuilt from the table when first needed."""
        schedule = self._schedules.get(partition)
        if schedule is None:
            schedule = RiskSchedule.rebuild(state.base.items(), partition)
            self._schedules[partition] = schedule
        return schedule

    def forget_schedules(self) -> None:
        """Drop the in-memory schedules (after a rebalance or a failed send)."""
        self._schedules.clear()

    # ---- time ------------------------------------------------------------------------

    def _advance_watermark(
        self,
        time_ms: int,
        partition: int,
        offset: int | None,
        state: StagedState,
        schedule: RiskSchedule,
        outputs: list[Output],
    ) -> None:
        key = watermark_key(partition)
        mark = state.get(key) or {"t": "wm", "p": partition, "wm": None, "_o": -1}
        if mark["wm"] is not None and time_ms <= mark["wm"]:
            return
        if mark["wm"] is not None:
            self._fire(schedule, time_ms - 1, state, outputs)
        if offset is None or mark["_o"] < offset:
            state[key] = {**mark, "wm": time_ms, "_o": mark["_o"] if offset is None else offset}

    def _fire(
        self, schedule: RiskSchedule, clock: int, state: StagedState, outputs: list[Output]
    ) -> None:
        while (entry := schedule.pop_due(clock)) is not None:
            due, key = entry
            st = _load(state, key)
            if st is None or st.get("due") != due:
                continue  # stale: the timer moved
            self._advance(key, st, clock, schedule, outputs)
            state[key] = st

    def _advance(
        self,
        key: str,
        st: dict[str, Any],
        clock: int,
        schedule: RiskSchedule,
        outputs: list[Output],
    ) -> None:
        if st["dirty"]:
            self._evaluate_dirty(key, st, outputs)
        check = self.config.check_interval_ms
        grid = clock // check * check
        if st["eval"] is not None and grid > st["eval"]:
            self._evaluate(key, st, grid, "decay", outputs)
        self._set_due(st, key, schedule)

    def _set_due(self, st: dict[str, Any], key: str, schedule: RiskSchedule) -> None:
        cfg = self.config
        if st["dirty"]:
            due = st["clock"]
        elif st["eval"] is None:
            due = None
        elif self._changing(st):
            due = (st["eval"] // cfg.check_interval_ms + 1) * cfg.check_interval_ms
        elif st["emit"] is not None and st["emit"]["score"] > 0:
            due = (st["eval"] // cfg.emit_period_ms + 1) * cfg.emit_period_ms
        else:
            due = None
        if due is not None and due != st.get("due"):
            schedule.push(due, key)
        st["due"] = due

    def _changing(self, st: Mapping[str, Any]) -> bool:
        """Whether the score can move without new signals (decay, sliding windows)."""
        if st["runs"] or st["deploys"]:
            return True
        at = st["eval"]
        return any(
            item.get("m") == "decay" and not item_open(item) and item_points(item, at, self.config)
            for item in st["items"].values()
        )

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
        elif (score > 0 or last["score"] > 0) and (
            at // cfg.emit_period_ms > last["time"] // cfg.emit_period_ms
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
        _trim(st["deploys"], lambda d: max(d["t0"], d.get("t") or 0), horizon, _MAX_DEPLOYS)
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


def _trim(table: dict[str, Any], time_of, horizon: int, cap: int) -> None:
    """Drop entries older than `horizon`, then the oldest beyond `cap`."""
    for key in sorted(table):
        if time_of(table[key]) < horizon:
            del table[key]
    if len(table) > cap:
        for key in sorted(table, key=lambda k: (time_of(table[k]), k))[: len(table) - cap]:
            del table[key]
