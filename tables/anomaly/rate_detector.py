"""Online burst detector for event counts per window (rates), one pass, constant state.

Counts of events per window are over-dispersed Poisson-like data: mostly small integers, long
runs of zero, occasional bursts. A detector built for continuous values (tables/
anomaly_detector.py) calls "3 where the most ever seen was 2" a new extreme; here the question
is how unlikely the count is given the series' recent rate:

- the expected rate `mean` and the variance `var` are exponentially weighted over past windows
  (empty windows count as zeros, see tables/windows/series_windows.py);
- a count `k` scores the upper tail probability `p = P(X >= k)`: Poisson(mean) while the data
  is not over-dispersed, negative binomial with the observed mean and variance when it is, and
  a normal approximation on the Anscombe-transformed count for large counts;
- the score is `min(1, -log10(p) / depth)`, so 0.9 means p ~ 1e-5.4 with the default depth 6;
- `mean` is floored (`min_rate`) so the first event after a long silence is not a "burst".

Only increases are anomalies here: bursts of failed logins, 403s, Falco alerts, CI failures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tables.anomaly.detector import Score


@dataclass(frozen=True, slots=True)
class RateDetectorConfig:
    """Tunables of the rate detector."""

    #: windows observed before anything is scored
    warmup: int = 20
    #: EWMA weight of the newest window
    alpha: float = 0.05
    #: lowest expected count per window (events), so a first event is never a burst
    min_rate: float = 0.2
    #: -log10(p) that maps to score 1.0
    depth: float = 6.0
    #: counts above this use the normal approximation instead of summing the pmf
    exact_limit: int = 200


def new_rate_state() -> dict[str, Any]:
    """The state of a series that has seen no window yet."""
    return {"n": 0, "mean": 0.0, "var": 0.0}


def update_rate(
    state: dict[str, Any], count: float, config: RateDetectorConfig | None = None
) -> tuple[dict[str, Any], Score]:
    """Score one window's count against the series' history, then learn from it."""
    cfg = config or RateDetectorConfig()
    n, mean, var = state["n"], state["mean"], state["var"]
    expected = max(mean, cfg.min_rate)
    if n < cfg.warmup or count <= expected:
        score, p = 0.0, 1.0
    else:
        p = upper_tail(int(count), expected, max(var, expected), cfg.exact_limit)
        score = min(1.0, -math.log10(max(p, 1e-300)) / cfg.depth)
    delta = count - mean
    mean = mean + cfg.alpha * delta if n else float(count)
    var = (1 - cfg.alpha) * (var + cfg.alpha * delta * delta) if n else 0.0
    new_state = {"n": n + 1, "mean": mean, "var": var}
    spread = math.sqrt(max(var, expected))
    band = (max(0.0, expected - 3 * spread), expected + 3 * spread)
    explanation = (
        f"count {count:g} against an expected {expected:.2f} per window; "
        + (f"p≈{p:.1e}" if p > 0 else "p<1e-300")
        if score > 0
        else "within the usual rate"
    )
    return new_state, Score(score, band, explanation)


def upper_tail(k: int, mean: float, var: float, exact_limit: int = 200) -> float:
    """P(X >= k) for a count with this mean and variance (Poisson or negative binomial)."""
    if k <= 0:
        return 1.0
    if k > exact_limit:
        # Anscombe: 2*sqrt(x + 3/8) is close to normal with sd ~ sqrt(var/mean).
        z = (2 * math.sqrt(k + 0.375) - 2 * math.sqrt(mean + 0.375)) / math.sqrt(var / mean)
        return 0.5 * math.erfc(z / math.sqrt(2))
    if var <= mean * 1.05:
        log_pmf = [-mean + i * math.log(mean) - math.lgamma(i + 1) for i in range(k)]
    else:
        r = mean * mean / (var - mean)
        q = r / (r + mean)
        log_pmf = [
            math.lgamma(i + r)
            - math.lgamma(r)
            - math.lgamma(i + 1)
            + r * math.log(q)
            + i * math.log(1 - q)
            for i in range(k)
        ]
    below = math.fsum(math.exp(v) for v in log_pmf)
    return max(0.0, 1.0 - below)
