"""When a risk subject must be evaluated next without new signals: at its clock when new
signals changed it, then on the `check_interval_ms` grid while something decays or slides out
of a window, else at the next `emit_period_ms` boundary. A subject whose decay cannot emit
sleeps through the grid steps in between (`next_audible`) and wakes as if it had not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tables.risk.evaluation import deploy_kept_until
from tables.risk.model import RiskConfig, decay_curve, deployment_time, item_open, item_points

#: Longest sleep of a subject whose score cannot change (`next_audible`), in check intervals
#: (about ten years with the defaults): past it, the subject is evaluated once and sleeps again.
_MAX_SLEEP_STEPS = 2**20


def timer_due(st: dict[str, Any], cfg: RiskConfig) -> int | None:
    """When the subject must be evaluated next without new signals."""
    if st["dirty"]:
        return st["clock"]
    if st["eval"] is None:
        return None
    memo = st.get("wake")  # a sleeping subject's wake-up (cleared by every evaluation)
    if memo and memo[0] == st["eval"]:
        return memo[1]
    if changing(st, cfg):
        step = (st["eval"] // cfg.check_interval_ms + 1) * cfg.check_interval_ms
        if cfg.emit_period_ms or st["emit"] is None:
            return step
        st["wake"] = [st["eval"], next_audible(st, step, cfg)]
        return st["wake"][1]
    if cfg.emit_period_ms and st["emit"] is not None and st["emit"]["score"] > 0:
        return (st["eval"] // cfg.emit_period_ms + 1) * cfg.emit_period_ms
    return None


def changing(st: Mapping[str, Any], cfg: RiskConfig) -> bool:
    """Whether the score can move without new signals (decay, sliding windows)."""
    if st["runs"] or st["deploys"]:
        return True
    return _decays_at(_decaying_items(st), st["eval"], cfg)


def next_audible(st: dict[str, Any], first: int, cfg: RiskConfig) -> int:
    """The first step of the evaluation grid from `first` on at which an evaluation
    emits, changes what the subject's windows hold, or ends the decay (no timer follows).

    Between two such steps (and without new signals, which make the subject dirty) a
    score only decays: an evaluation there emits nothing, so the subject sleeps through
    them. Found by doubling then bisection, so the work grows with the log of a quiet
    stretch; the emissions are those of an evaluation at every step."""
    check = cfg.check_interval_ms
    upcoming = [at for at in _window_instants(st, cfg) if at > st["eval"]]
    bound = ((min(upcoming) - 1) // check + 1) * check if upcoming else None
    emitted = st["emit"]["score"]
    windowed = _windowed_at(st, first, cfg)
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


def wake_before(st: dict[str, Any], at: int, cfg: RiskConfig) -> None:
    """A sleeping subject (`next_audible`) gets a signal at `at`: its grid moves to the
    last step before `at` that it slept through, as if each had been evaluated."""
    memo = st.get("wake")
    if st["dirty"] or not memo or memo[0] != st["eval"]:
        return
    check = cfg.check_interval_ms
    slept = min(memo[1] - check, (at - 1) // check * check)
    if slept > st["eval"]:
        st["eval"] = slept


def _window_instants(st: Mapping[str, Any], cfg: RiskConfig) -> list[int]:
    """When a CI run or a deployment leaves its scoring window, or is dropped from the
    subject (`prune`): the instants at which a score may move other than by decay."""
    instants = []
    for run in st["runs"].values():
        instants += [run["t"] + cfg.ci_window_ms, run["t"] + cfg.ci_window_ms + 1]
    for deploy in st["deploys"].values():
        instants.append(deployment_time(deploy) + cfg.cfr_window_ms)
        instants.append(deploy_kept_until(deploy, cfg) + 1)
    return instants


def _windowed_at(st: Mapping[str, Any], at: int, cfg: RiskConfig) -> bool:
    """Whether the subject still keeps a CI run or a deployment after `prune` at `at`
    (its score may then still change without decay: `changing`)."""
    return any(run["t"] >= at - cfg.ci_window_ms for run in st["runs"].values()) or any(
        deploy_kept_until(deploy, cfg) >= at for deploy in st["deploys"].values()
    )


def _decaying_items(st: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The subject's items whose points decay once closed (`m` decay), not open now."""
    return [
        item for item in st["items"].values() if item.get("m") == "decay" and not item_open(item)
    ]


def _decays_at(items: list[dict[str, Any]], at: int, config: RiskConfig) -> bool:
    """Whether any of these decaying items still has points at `at`."""
    return any(item_points(item, at, config) for item in items)
