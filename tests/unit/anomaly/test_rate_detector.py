"""The burst detector for event counts: quiet on Poisson noise, loud on real bursts."""

from __future__ import annotations

import math
import random

import orjson

from tables.anomaly.rate_detector import RateDetectorConfig, new_rate_state, update_rate, upper_tail


def poisson(rng: random.Random, lam: float) -> int:
    k, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def test_upper_tail_matches_poisson_by_hand():
    lam = 0.5
    expected = 1 - math.exp(-lam) * (1 + lam + lam**2 / 2)
    assert math.isclose(upper_tail(3, lam, lam), expected, rel_tol=1e-9)
    assert upper_tail(0, 1.0, 1.0) == 1.0


def test_overdispersion_widens_the_tail():
    assert upper_tail(12, 4.0, 16.0) > upper_tail(12, 4.0, 4.0)


def test_large_counts_use_the_normal_approximation_monotonically():
    assert upper_tail(500, 300.0, 300.0) < upper_tail(400, 300.0, 300.0) < 0.5


def test_poisson_noise_stays_below_the_alert_threshold():
    rng = random.Random(3)
    state, worst = new_rate_state(), 0.0
    for _ in range(5000):
        state, score = update_rate(state, poisson(rng, 0.4))
        worst = max(worst, score.score)
    assert worst < 0.9


def test_a_burst_scores_high_and_state_round_trips():
    rng = random.Random(4)
    state = new_rate_state()
    for _ in range(300):
        state, _ = update_rate(state, poisson(rng, 1.0))
    state = orjson.loads(orjson.dumps(state))
    state, score = update_rate(state, 40)
    assert score.score == 1.0
    assert "expected" in score.explanation


def test_warm_up_reports_nothing():
    state = new_rate_state()
    cfg = RateDetectorConfig(warmup=10)
    scores = []
    for count in [0] * 9 + [100]:
        state, score = update_rate(state, count, cfg)
        scores.append(score.score)
    assert scores == [0.0] * 10
