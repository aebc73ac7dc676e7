"""Risk model shared by the risk stage, scorecards and the gate: config, state shape, scoring.

A risk *subject* is a service (`payments`) or an aggregate (`repo:acme/payments`,
`cluster:default`, `account:123456789012`). Its state (one table value, see `new_subject`)
holds *items* (open findings, incidents, anomalies, drift, failing CI pipelines), the CI run
history, deployments, incident start times and recent changes. Everything is event time.

Score at time `now` (docs/risk.md):

- item points r_i (0..100): open items hold their points; closed `hold` items (findings,
  drift records, CI pipelines) count 0; closed `decay` items (runtime/prom alerts, violations)
  and transient ones (anomalies) count r × 0.5 ** ((now − t) / half_life) from the time t
  they closed or happened. CI adds a failure-rate item and one item per flaky job, change
  adds the DORA change failure rate.
- weighted risk w_i = weight(category) × r_i; sorted from the largest, the i-th counts
  w_i / i^1.5 (Elastic's entity risk scoring: a Riemann zeta series), and
  base = Σ w_i / i^1.5 / ζ(1.5): 0..100, never above the largest w_i, so many low-risk items
  approach but never reach one high-risk item.
- score = round(100 × o·M / (1 + o·M)), o = base / (100 − base): M = criticality × exposure
  from the catalogue (as alert scoring: low 0.6 .. critical 1.2; internet 1.25) for services,
  1 for aggregates, applied to the odds (Elastic's Bayesian criticality update), so it
  ranks without ever reaching 100 unless base does.
- contributions: the score is split over categories in proportion to their items' terms
  (w_i / i^1.5, additive), by largest remainder, so the integer points add up to the score.

Every iteration runs in sorted key order: the same state gives the same floats, whatever order
its signals arrived in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.model.events import SEVERITY_RANK
from app.model.weights import CRITICALITY_WEIGHT, EXPOSURE_WEIGHT, UNKNOWN_CRITICALITY

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

#: Score categories, in the order ties are broken.
CATEGORIES: tuple[str, ...] = ("findings", "incidents", "anomalies", "drift", "ci", "change")

DEFAULT_WEIGHTS: dict[str, float] = {
    "findings": 1.0,
    "incidents": 1.0,
    "anomalies": 0.5,
    "drift": 0.7,
    "ci": 0.5,
    "change": 0.5,
}

#: Decayed points below this are treated as gone.
MIN_POINTS = 0.05
#: The exponent of the rank weights 1 / i^s and their sum over all ranks, ζ(1.5).
RANK_EXPONENT = 1.5
ZETA = 2.612375348685488
DECISIONS: tuple[str, ...] = ("allow", "warn", "block")


@dataclass(frozen=True)
class RiskConfig:
    """Risk scoring, emission, window and gate settings (all times event-time milliseconds).

    The VIGIL_RISK_* environment names are listed in docs/risk.md.
    """

    #: Half-life of transient and resolved-incident points.
    half_life_ms: int = 6 * HOUR_MS
    #: Emit when the score moved by more than this many points since the last emission.
    emit_delta: float = 5.0
    #: Emit at least once per period of event time while the score (or the last one) is > 0;
    #: 0 (the default): only on a change of more than `emit_delta`.
    emit_period_ms: int = 0
    #: Grid of the decay re-evaluations (the period must be a multiple of it).
    check_interval_ms: int = 5 * MINUTE_MS
    #: How long resolved items are kept (also: older item signals are ignored).
    retention_ms: int = 7 * DAY_MS
    #: CI failure rate and flaky-job window.
    ci_window_ms: int = DAY_MS
    #: Change failure rate window.
    cfr_window_ms: int = 30 * DAY_MS
    #: An incident this soon after a deployment makes it a failed change.
    incident_window_ms: int = 24 * HOUR_MS
    #: Lowest alert severity that counts as an incident (anomalies always count).
    incident_min_severity: str = "high"
    #: Category weights (0..1).
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    #: Branches whose failing pipelines count in the score (and in the gate without a branch).
    main_branches: tuple[str, ...] = ("main", "master")
    #: Environments counted by the change failure rate (others are recorded, not counted).
    production_environments: tuple[str, ...] = ("production", "prod", "live")
    #: Most items kept per subject (resolved first, then the lowest points, are dropped).
    max_items: int = 1000
    #: Pseudo-count shrinking small-sample CI failure and change failure rates towards 0.
    prior_count: float = 2.0
    #: Points of the CI failure-rate item at a 100 % failure rate.
    ci_rate_points: float = 50.0
    #: Points per flaky job.
    flaky_points: float = 10.0
    #: Lines a changed file counts for when only file counts are known.
    lines_per_file: int = 20
    # ---- gate and scorecards ---------------------------------------------------------------
    #: Score from which the gate warns / blocks on the score alone.
    warn_score: int = 40
    block_score: int = 70
    #: Block (not only warn) on open critical findings that are not in KEV.
    block_critical_findings: bool = False
    #: Warn at this CI failure rate with at least `min_runs` runs in the window.
    ci_failure_rate_warn: float = 0.5
    min_runs: int = 4
    #: Warn at this change failure rate with at least `min_deployments` in the window.
    cfr_warn: float = 0.3
    min_deployments: int = 4
    #: A change this large (lines or files) warns.
    large_change_lines: int = 1000
    large_change_files: int = 50
    #: Anomalies this recent are gate reasons.
    recent_ms: int = HOUR_MS
    #: Warn when the previous deployment is more recent than this (0: off).
    deploy_cooldown_ms: int = 0

    def __post_init__(self) -> None:
        positive = ("half_life_ms", "check_interval_ms", "retention_ms")
        for name in (*positive, "ci_window_ms", "cfr_window_ms", "max_items"):
            if getattr(self, name) <= 0:
                raise ValueError(f"risk config: {name} must be positive")
        if self.emit_period_ms < 0 or self.emit_period_ms % self.check_interval_ms:
            raise ValueError(
                "risk config: emit_period_ms must be 0 or a multiple of check_interval_ms"
            )
        if self.emit_delta < 0 or self.incident_window_ms < 0 or self.prior_count < 0:
            raise ValueError("risk config: emit_delta, incident_window, prior must be >= 0")
        if self.incident_min_severity not in SEVERITY_RANK:
            raise ValueError(f"risk config: unknown severity {self.incident_min_severity!r}")
        for name, weight in self.weights.items():
            if name not in CATEGORIES or not 0 <= weight <= 1:
                raise ValueError(f"risk config: weight {name}={weight} (categories 0..1)")
        if not 0 <= self.warn_score <= self.block_score <= 100:
            raise ValueError("risk config: need 0 <= warn_score <= block_score <= 100")

    def weight(self, category: str) -> float:
        return float(self.weights.get(category, DEFAULT_WEIGHTS[category]))


def parse_weights(text: str) -> dict[str, float]:
    """`findings=1,incidents=1,anomalies=0.5` -> weights (unlisted categories keep their
    defaults); ValueError on an unknown category or a bad number."""
    weights = dict(DEFAULT_WEIGHTS)
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in CATEGORIES:
            raise ValueError(f"risk weights: expected <category>=<0..1>, got {part.strip()!r}")
        weights[name] = float(value)
    return weights


# ---- state --------------------------------------------------------------------------------


def new_subject(subject: str, entity_type: str) -> dict[str, Any]:
    """An empty subject state (the risk table's value).

    `clock`: highest signal time applied; `eval`: last evaluation time; `dirty`: signals
    applied since then; `due`: next timer; `emit`: last emission `{score, time}`; `info`:
    catalogue criticality and exposure; `items`: key -> item; `runs`: CI run key -> `{t, ok,
    n, sha, k, b}`; `deploys`: deployment key -> record; `incidents`: key -> start time;
    `changes`: commit sha -> change size; `pend`: signals held until the clock passes them.
    """
    return {
        "t": "risk",
        "subject": subject,
        "type": entity_type,
        "info": {},
        "info_at": None,
        "clock": None,
        "eval": None,
        "dirty": False,
        "due": None,
        "emit": None,
        "items": {},
        "runs": {},
        "deploys": {},
        "incidents": {},
        "changes": {},
        "pend": [],
    }


def item_open(item: Mapping[str, Any]) -> bool:
    """Opened after its last close (a close at the same instant wins)."""
    opened, closed = item.get("o"), item.get("x")
    return opened is not None and (closed is None or opened > closed)


def item_anchor(item: Mapping[str, Any]) -> int | None:
    """When a not-open item's decay started: its close or transient time, the later."""
    times = [t for t in (item.get("x"), item.get("tr")) if t is not None]
    return max(times) if times else None


def decay(points: float, age_ms: int, half_life_ms: int) -> float:
    """points × 0.5 ** (age / half-life); a negative age (a future anchor) does not decay."""
    return points * 0.5 ** (max(0, age_ms) / half_life_ms)


def item_points(item: Mapping[str, Any], now_ms: int, config: RiskConfig) -> float:
    """An item's points at `now_ms` (see the module docstring)."""
    points = float(item.get("p") or 0.0)
    if item_open(item):
        return points
    if item.get("m") == "hold" and item.get("tr") is None:
        return 0.0
    anchor = item_anchor(item)
    if anchor is None:
        return 0.0
    value = decay(points, now_ms - anchor, config.half_life_ms)
    return value if value >= MIN_POINTS else 0.0


def item_status(item: Mapping[str, Any]) -> str:
    if item_open(item):
        return "open"
    return "resolved" if item.get("x") is not None else "transient"


def on_branch(item: Mapping[str, Any], branches: Iterable[str]) -> bool:
    """Whether a CI pipeline item runs on one of `branches` (an unknown branch counts)."""
    branch = (item.get("d") or {}).get("branch")
    return branch is None or branch in branches


def multiplier(state: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
    """(M, {criticality, exposure}) from the catalogue info; 1 for aggregates."""
    if state.get("type") != "service":
        return 1.0, {}
    info = state.get("info") or {}
    criticality = CRITICALITY_WEIGHT.get(info.get("criticality"), UNKNOWN_CRITICALITY)
    exposure = EXPOSURE_WEIGHT.get(info.get("exposure"), 1.0)
    described = {
        "criticality": info.get("criticality"),
        "exposure": info.get("exposure"),
        "criticality_weight": criticality,
        "exposure_weight": exposure,
    }
    return criticality * exposure, described


# ---- CI and change metrics ----------------------------------------------------------------


def ci_metrics(state: Mapping[str, Any], now_ms: int, config: RiskConfig) -> dict[str, Any]:
    """CI health over `ci_window_ms` before `now_ms`.

    `runs`/`failures`/`rate`: completed workflow runs (pipelines) in the window, jobs when no
    run is known; `points` = ci_rate_points × failures / (runs + prior_count); `flaky`:
    job or workflow name -> commits on which it failed and later succeeded.
    """
    start = now_ms - config.ci_window_ms
    # Unsorted: only counts and the sorted groups below come from it.
    window = [
        (run["t"], key, run)
        for key, run in state.get("runs", {}).items()
        if start < run["t"] <= now_ms
    ]
    runs = [entry for entry in window if entry[2].get("k") == "run"] or [
        entry for entry in window if entry[2].get("k") != "run"
    ]
    failures = sum(1 for _, _, run in runs if not run["ok"])
    total = len(runs)
    by_commit: dict[tuple[str, str], list[tuple[int, bool, str]]] = {}
    for t, key, run in window:
        if run.get("sha"):
            by_commit.setdefault((run["n"], run["sha"]), []).append((t, run["ok"], key))
    flaky: dict[str, int] = {}
    # A commit with one result cannot have failed and later succeeded.
    for (name, _sha), results in sorted(kv for kv in by_commit.items() if len(kv[1]) > 1):
        failed = False
        for _, ok, _ in sorted(results):
            if not ok:
                failed = True
            elif failed:
                flaky[name] = flaky.get(name, 0) + 1
                break
    points = config.ci_rate_points * failures / (total + config.prior_count) if total else 0.0
    return {
        "runs": total,
        "failures": failures,
        "rate": failures / total if total else None,
        "points": points,
        "flaky": flaky,
    }


def is_production(deploy: Mapping[str, Any], config: RiskConfig) -> bool:
    """Production by the provider's flag, the tier, or the environment name; unknown counts."""
    if deploy.get("prod") is not None:
        return bool(deploy["prod"])
    env = deploy.get("env")
    return env is None or str(env).lower() in config.production_environments


def deployment_time(deploy: Mapping[str, Any]) -> int:
    """When a deployment finished (else when it was first seen)."""
    return deploy["t"] if deploy.get("t") is not None else deploy["t0"]


def change_failure(
    state: Mapping[str, Any], now_ms: int, config: RiskConfig, exclude: str | None = None
) -> dict[str, Any]:
    """DORA change failure rate over `cfr_window_ms`: production deployments that finished
    (success or failure) in the window; failed = the deployment failed, or an incident
    started on the subject within `incident_window_ms` after it."""
    start = now_ms - config.cfr_window_ms
    incidents = sorted(state.get("incidents", {}).values())
    total = failed = 0
    failed_keys: list[str] = []
    for key, deploy in sorted(state.get("deploys", {}).items()):
        if key == exclude or deploy.get("state") not in ("success", "failure"):
            continue
        if not is_production(deploy, config):
            continue
        t = deployment_time(deploy)
        if not start < t <= now_ms:
            continue
        total += 1
        end = t + config.incident_window_ms
        incident = any(t < s <= min(end, now_ms) for s in incidents)
        if deploy["state"] == "failure" or incident:
            failed += 1
            failed_keys.append(key)
    points = 100.0 * failed / (total + config.prior_count) if total else 0.0
    return {
        "deployments": total,
        "failed": failed,
        "rate": failed / total if total else None,
        "points": points,
        "failed_deployments": failed_keys[-5:],
    }


def change_size(change: Mapping[str, Any] | None, config: RiskConfig) -> dict[str, Any]:
    """`{lines, files, size}` of a change description (push, merge request, proposal);
    `size` is lines, else files × lines_per_file, else None."""
    if not change:
        return {"lines": None, "files": None, "size": None}

    def number(*names: str) -> int | None:
        total, seen = 0, False
        for name in names:
            value = change.get(name)
            if isinstance(value, str):
                value = value.rstrip("+")
                value = int(value) if value.isdigit() else None
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                total += int(value)
                seen = True
        return total if seen else None

    lines = number("lines_changed")
    if lines is None:
        lines = number("additions", "deletions")
    files = number("files_changed")
    if files is None:
        files = number("files_added", "files_modified", "files_removed")
    if files is None:
        files = number("changes_count")
    size = lines if lines is not None else files * config.lines_per_file if files else None
    return {"lines": lines, "files": files, "size": size}


def change_points(size: int | None, config: RiskConfig) -> float:
    """Risk of a change of `size` lines: 50 × size / (size + large_change_lines)."""
    if not size:
        return 0.0
    return 50.0 * size / (size + config.large_change_lines)


# ---- score --------------------------------------------------------------------------------


@dataclass(slots=True)
class Assessment:
    """A subject's score at one time, with what made it."""

    score: int
    raw: float
    multiplier: float
    factors: dict[str, Any]
    contributions: list[dict[str, Any]]
    #: category -> [(key, points, stored item or summary)], points > 0, sorted by key.
    items: dict[str, list[tuple[str, float, dict[str, Any]]]]
    ci: dict[str, Any]
    cfr: dict[str, Any]


def _summary(key: str, item: Mapping[str, Any], points: float) -> dict[str, Any]:
    """An item as a contribution lists it: its points now and `recency` (points now / its
    own points: 1 while open, halving every half-life after it closed or happened)."""
    own = float(item.get("p") or 0.0)
    return {
        "key": key,
        "entity": item.get("e"),
        "points": round(points, 1),
        "recency": round(points / own, 3) if own > 0 else 1.0,
        "status": item_status(item),
        "severity": item.get("sev"),
        **(item.get("d") or {}),
    }


def category_items(
    state: Mapping[str, Any],
    now_ms: int,
    config: RiskConfig,
    extra: Iterable[tuple[str, str, float, dict[str, Any]]] = (),
) -> tuple[dict[str, list[tuple[str, float, dict[str, Any]]]], dict[str, Any], dict[str, Any]]:
    """Every item with points at `now_ms`, by category, plus the CI and change metrics.

    Entries are `(key, points, payload)`: the stored item (it has `c`) or, for computed
    items (CI rate, flaky jobs, change failure rate, `extra`), their summary."""
    cats: dict[str, list[tuple[str, float, dict[str, Any]]]] = {c: [] for c in CATEGORIES}
    items = state.get("items", {})
    for key in sorted(items):
        item = items[key]
        if item.get("c") == "ci" and not on_branch(item, config.main_branches):
            continue
        points = item_points(item, now_ms, config)
        if points > 0:
            cats[item["c"]].append((key, points, item))
    ci = ci_metrics(state, now_ms, config)
    if ci["points"] > 0:
        summary = {
            "key": "~ci_failure_rate",
            "points": round(ci["points"], 1),
            "runs": ci["runs"],
            "failures": ci["failures"],
            "rate": round(ci["rate"], 3),
        }
        cats["ci"].append(("~ci_failure_rate", ci["points"], summary))
    for name, commits in sorted(ci["flaky"].items()):
        key = f"~flaky|{name}"
        summary = {"key": key, "points": config.flaky_points, "job": name, "commits": commits}
        cats["ci"].append((key, config.flaky_points, summary))
    cfr = change_failure(state, now_ms, config)
    if cfr["points"] > 0:
        summary = {
            "key": "~change_failure_rate",
            "points": round(cfr["points"], 1),
            "deployments": cfr["deployments"],
            "failed": cfr["failed"],
            "rate": round(cfr["rate"], 3),
        }
        cats["change"].append(("~change_failure_rate", cfr["points"], summary))
    for category, key, points, summary in extra:
        if points > 0:
            cats[category].append(
                (key, points, {"key": key, "points": round(points, 1), **summary})
            )
    return cats, ci, cfr


def ranked_terms(weighted: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """`(category, w_i / i^1.5)` for the weighted risks ranked from the largest: each item's
    term of the base score's sum (ties rank alike in any order: equal values, equal sum)."""
    ranked = sorted((value for value in weighted if value[1] > 0), key=lambda v: -v[1])
    return [
        (category, value / (rank**RANK_EXPONENT))
        for rank, (category, value) in enumerate(ranked, start=1)
    ]


def criticality_update(base: float, m: float) -> float:
    """`base` (0..100) with the criticality modifier `m` applied to its odds: 100 × o·m /
    (1 + o·m), o = base / (100 − base) (Elastic's Bayesian update)."""
    if base <= 0:
        return 0.0
    if base >= 100:
        return 100.0
    odds = m * base / (100.0 - base)
    return 100.0 * odds / (1.0 + odds)


def allocate(total: int, shares: Mapping[str, float], order: Iterable[str]) -> dict[str, int]:
    """Split the integer `total` in proportion to `shares` by largest remainder (ties: the
    earlier in `order`); the parts always add up to `total`."""
    names = list(order)
    weight = sum(max(0.0, shares.get(name, 0.0)) for name in names)
    if total <= 0 or weight <= 0:
        return {name: 0 for name in names}
    quotas = {name: total * max(0.0, shares.get(name, 0.0)) / weight for name in names}
    parts = {name: math.floor(quota) for name, quota in quotas.items()}
    rest = total - sum(parts.values())
    ranked = sorted(names, key=lambda n: (-(quotas[n] - parts[n]), names.index(n)))
    for name in ranked[: max(0, rest)]:
        parts[name] += 1
    return parts


def _combine(
    weighted: Iterable[tuple[str, float]], m: float
) -> tuple[dict[str, float], float, float, int]:
    """(each category's part of the base, base, raw score, score) of the items'
    `(category, weighted points)`, in category then item order."""
    terms = ranked_terms(weighted)
    parts = dict.fromkeys(CATEGORIES, 0.0)
    for category, term in terms:
        parts[category] += term / ZETA
    base = min(100.0, sum(parts.values()))
    raw = criticality_update(base, m)
    return parts, base, raw, min(100, math.floor(raw + 0.5))


def decay_curve(
    state: Mapping[str, Any], start_ms: int, config: RiskConfig
) -> Callable[[int], int]:
    """The subject's score (`assess(...).score`) as a function of time from `start_ms` on,
    while only decay changes it: no new signal, and no CI run or deployment entering or
    leaving its window. Only the decaying items are recomputed at each time, in the order
    `category_items` lists them, so the score is the very number `assess` gives."""
    cats, _, _ = category_items(state, start_ms, config)
    m = multiplier(state)[0]
    # (category, its weight, points, the item when its points decay)
    plan = [
        (
            category,
            config.weight(category),
            points,
            payload if "c" in payload and not item_open(payload) else None,
        )
        for category in CATEGORIES
        for _, points, payload in cats[category]
    ]

    def score_at(now_ms: int) -> int:
        weighted = []
        for category, weight, points, item in plan:
            if item is not None:
                points = item_points(item, now_ms, config)
            if points > 0:
                weighted.append((category, weight * points))
        return _combine(weighted, m)[3]

    return score_at


def assess(
    state: Mapping[str, Any],
    now_ms: int,
    config: RiskConfig,
    extra: Iterable[tuple[str, str, float, dict[str, Any]]] = (),
    top: int = 5,
) -> Assessment:
    """The subject's score at `now_ms`; `extra` adds `(category, key, points, summary)` items
    (the gate's proposed change)."""
    cats, ci, cfr = category_items(state, now_ms, config, extra)
    m, described = multiplier(state)
    weighted = ((c, config.weight(c) * points) for c in CATEGORIES for _, points, _ in cats[c])
    parts, base, raw, score = _combine(weighted, m)
    points = allocate(score, parts, CATEGORIES)
    contributions = []
    for category in CATEGORIES:
        entries = cats[category]
        if not entries:
            continue
        ranked = [
            (key, value, _summary(key, payload, value) if "c" in payload else payload)
            for key, value, payload in sorted(entries, key=lambda e: (-e[1], e[0]))[:top]
        ]
        contributions.append(
            {
                "factor": category,
                "points": points[category],
                "count": len(entries),
                "details": {
                    "base_points": round(parts[category], 2),
                    "weight": config.weight(category),
                    "top": [summary for _, _, summary in ranked],
                },
            }
        )
    contributions.sort(key=lambda c: (-c["points"], CATEGORIES.index(c["factor"])))
    factors = {"multiplier": round(m, 4), **described, "base": round(base, 4)}
    return Assessment(score, raw, m, factors, contributions, cats, ci, cfr)


def max_decision(*decisions: str) -> str:
    return max(decisions, key=DECISIONS.index, default="allow")
