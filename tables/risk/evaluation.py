"""Evaluating a risk subject at a time: pending deployments get their scorecard, old entries
are pruned, and the score is emitted on `risk` when it is the first non-zero one, moved by
more than `emit_delta`, has a new top contributing category after new signals, or an
`emit_period_ms` boundary passed since the last emission while it (or the last one) is
non-zero.

Output `risk`: `{id, entity, entity_type, score, previous_score, reason
(first|change|decay|periodic), contributions [{factor, points, count, details}], factors,
time, time_ms}`; the contributions' points add up to `score`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from app.model.events import event_id, format_time
from app.model.outputs import Output
from tables.risk.folding import DEPLOY_ATTRS, refresh_info
from tables.risk.model import RiskConfig, assess, item_anchor, item_open, item_points
from tables.risk.scorecards import scorecard

_MAX_RUNS = 1000
_MAX_DEPLOYS = 500
_MAX_INCIDENTS = 500
_MAX_CHANGES = 500


class Evaluator:
    """Evaluates subjects with one config and catalogue, counting into `stats` (emitted,
    scorecards)."""

    def __init__(
        self,
        config: RiskConfig,
        services: Mapping[str, Mapping[str, Any]],
        stats: Counter[str],
    ) -> None:
        self.config = config
        self.services = services
        self.stats = stats

    def evaluate_dirty(self, key: str, st: dict[str, Any], outputs: list[Output]) -> None:
        """Evaluate a subject new signals changed, at its clock (scorecards included)."""
        at = st["clock"] if st["eval"] is None else max(st["clock"], st["eval"])
        st["dirty"] = False
        self.evaluate(key, st, at, "change", outputs, cards=True)

    def evaluate(
        self,
        key: str,
        st: dict[str, Any],
        at: int,
        trigger: str,
        outputs: list[Output],
        cards: bool = False,
    ) -> None:
        """Evaluate the subject at `at`; emit its score when it says something new."""
        cfg = self.config
        st.pop("wake", None)
        st["eval"] = at if st["eval"] is None else max(st["eval"], at)
        refresh_info(st, self.services)
        prune(st, at, cfg)
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
        """The scorecard of every deployment of the subject that has none yet."""
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
            for attr, name in DEPLOY_ATTRS.items():
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


def prune(st: dict[str, Any], at: int, cfg: RiskConfig) -> None:
    """Drop what no longer counts at `at`, and the least important beyond the caps."""
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
    _trim(st["deploys"], deploy_time, horizon, _MAX_DEPLOYS)
    _trim(st["incidents"], lambda t: t, horizon, _MAX_INCIDENTS)
    _trim(st["changes"], lambda c: c["t"], at - cfg.cfr_window_ms, _MAX_CHANGES)


def deploy_time(deploy: Mapping[str, Any]) -> int:
    """The time `prune` keeps a deployment by."""
    return max(deploy["t0"], deploy.get("t") or 0)


def deploy_kept_until(deploy: Mapping[str, Any], config: RiskConfig) -> int:
    """The last evaluation time at which `prune` keeps a deployment."""
    return deploy_time(deploy) + config.cfr_window_ms + config.incident_window_ms


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
