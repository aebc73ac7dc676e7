"""The online anomaly detector: bounded JSON state, determinism, no look-ahead, sane scores."""

from __future__ import annotations

import math
import random

import orjson
import pytest

from tables.anomaly.detector import (
    ALERT_THRESHOLD,
    DetectorConfig,
    Score,
    _calibrate,
    _fisher_tail,
    _t4_tail,
    new_state,
    update,
)

CFG = DetectorConfig()
STEP_MS = 300_000  # 5-minute rows, like most of NAB
T0 = 1_396_310_400_000  # 2014-04-01 00:00 UTC
MAX_STATE_BYTES = 64 * 1024


def run(values, cfg=CFG, state=None, start=0):
    state = new_state(cfg) if state is None else state
    scores = []
    for i, v in enumerate(values, start):
        state, score = update(state, T0 + i * STEP_MS, v, cfg)
        scores.append(score)
    return state, scores


def daily(n, noise=0.0, seed=7):
    rng = random.Random(seed)
    return [
        50.0 + 30.0 * math.sin(2 * math.pi * i / 288) + (rng.gauss(0, noise) if noise else 0.0)
        for i in range(n)
    ]


def test_fresh_state_is_plain_json():
    state = new_state(CFG)
    assert orjson.loads(orjson.dumps(state)) == state


def test_scores_are_in_unit_interval_and_carry_an_explanation():
    rng = random.Random(3)
    _, scores = run([rng.gauss(10, 2) for _ in range(2000)])
    for s in scores:
        assert isinstance(s, Score)
        assert 0.0 <= s.score <= 1.0
        assert isinstance(s.explanation, str) and s.explanation
    assert scores[0].expected is None  # warming up
    low, high = scores[-1].expected
    assert low <= high


@pytest.mark.parametrize(
    "gen",
    [
        lambda rng, i: rng.random(),  # many distinct level sequences: the biggest model
        lambda rng, i: rng.gauss(0, 1),
        lambda rng, i: math.tan(math.pi * (rng.random() - 0.499)),  # heavy tails
        lambda rng, i: i * 0.37 + rng.gauss(0, 5),  # trend: keeps re-quantising
    ],
)
def test_state_stays_bounded(gen):
    rng = random.Random(11)
    state = new_state(CFG)
    worst = 0
    for i in range(20_000):
        state, _ = update(state, T0 + i * STEP_MS, gen(rng, i), CFG)
        if i % 97 == 0:
            worst = max(worst, len(orjson.dumps(state)))
    assert worst < MAX_STATE_BYTES
    assert len(orjson.dumps(state)) < MAX_STATE_BYTES


def test_deterministic():
    values = daily(3000, noise=2.0)
    values[2500] += 80
    _, a = run(values)
    _, b = run(values)
    assert [s.score for s in a] == [s.score for s in b]
    assert [s.explanation for s in a] == [s.explanation for s in b]


def test_orjson_round_trip_every_row_gives_identical_scores():
    rng = random.Random(5)
    values = [v + (rng.random() * 40 if rng.random() < 0.01 else 0.0) for v in daily(2500, 3.0)]
    _, direct = run(values)
    state = new_state(CFG)
    via_json = []
    for i, v in enumerate(values):
        state, score = update(state, T0 + i * STEP_MS, v, CFG)
        via_json.append(score)
        state = orjson.loads(orjson.dumps(state))  # e.g. a Faust table / RocksDB in between
    assert [s.score for s in via_json] == [s.score for s in direct]
    assert [s.explanation for s in via_json] == [s.explanation for s in direct]


def test_restart_mid_stream_continues_exactly():
    values = daily(3000, noise=1.5)
    values[2200] = 200.0
    _, direct = run(values)
    state, first = run(values[:1234])
    restored = orjson.loads(orjson.dumps(state))
    _, rest = run(values[1234:], state=restored, start=1234)
    assert [s.score for s in first + rest] == [s.score for s in direct]


def test_no_look_ahead_prefix_scores_do_not_change():
    rng = random.Random(9)
    values = daily(4000, noise=2.0)
    values[3000:3040] = [rng.gauss(10, 1) for _ in range(40)]
    _, full = run(values)
    for cut in (200, 1500, 3020):
        _, prefix = run(values[:cut])
        assert [s.score for s in prefix] == [s.score for s in full[:cut]]


def test_injected_spike_scores_high():
    values = daily(3000, noise=1.0)
    values[2500] = 160.0  # far above anything seen
    _, scores = run(values)
    assert scores[2500].score >= 0.9
    assert scores[2500].detector == "ext"
    assert "above the highest" in scores[2500].explanation
    # the quiet part before it stays below the alerting range
    assert max(s.score for s in scores[1000:2500]) < ALERT_THRESHOLD


def test_in_range_pattern_break_scores_high():
    """A daily wave that goes flat at mid-level for a day is caught although in range."""
    values = daily(4032, noise=0.5)
    values[2880:3168] = [50.0 + random.Random(i).gauss(0, 0.5) for i in range(288)]
    _, scores = run(values)
    assert max(s.score for s in scores[2880:3168]) >= 0.8
    assert max(s.score for s in scores[1000:2880]) < ALERT_THRESHOLD


@pytest.mark.parametrize(
    "values",
    [
        [45.0] * 4032,  # flat line
        daily(4032),  # perfectly periodic
        [20.0 if (i // 144) % 2 else 80.0 for i in range(4032)],  # square wave
    ],
    ids=["flat", "periodic", "square"],
)
def test_regular_series_never_alert(values):
    _, scores = run(values)
    # once a full day has been seen (the first day still sets new extremes); the square wave's
    # jumps are 12 RMS steps, which `dx`'s t prior calls rare at first (0.59 on day 3)
    assert max(s.score for s in scores[2 * 288 :]) < ALERT_THRESHOLD - 0.1


def test_noisy_periodic_series_alerts_rarely():
    """Gaussian noise sets the odd new extreme; a handful of alerts in two weeks at most."""
    for seed in (1, 2, 3):
        _, scores = run(daily(4032, noise=1.0, seed=seed))
        scores = scores[2 * 288 :]
        alerts = [s for s in scores if s.score >= ALERT_THRESHOLD]
        assert len(alerts) <= 3
        assert all(s.score < 0.9 for s in scores)


def test_refractory_reports_one_alert_per_incident():
    values = daily(3000, noise=1.0)
    values[2500:2510] = [170.0 + i for i in range(10)]  # ten rows of one incident
    _, scores = run(values)
    alerts = [i for i, s in enumerate(scores[2500:2600], 2500) if s.score >= ALERT_THRESHOLD]
    assert alerts[0] == 2500
    assert len(alerts) <= 2
    assert any("suppressed" in s.explanation for s in scores[2501:2510])


def test_non_finite_values_are_ignored_without_touching_state():
    state, _ = run(daily(500, noise=1.0))
    before = orjson.dumps(state)
    for bad in (float("nan"), float("inf"), float("-inf")):
        state, score = update(state, T0, bad, CFG)
        assert score.score == 0.0
    assert orjson.dumps(state) == before


def test_config_knobs_change_behaviour():
    values = daily(3000, noise=1.0)
    values[2500] = 160.0
    _, scores = run(values, DetectorConfig(w_ext=0.0))
    assert scores[2500].detector != "ext"


def odd_run() -> list[float]:
    """A noisy daily wave with 60 rows (3000..3059) each pushed 8-14 units up or down."""
    rng = random.Random(4)
    values = daily(4000, noise=2.0)
    for i in range(3000, 3060):
        values[i] += rng.choice((-1, 1)) * rng.uniform(8, 14)
    return values


def test_a_run_of_moderately_unusual_values_is_scored_by_its_likelihood():
    """Each row alone is only mildly odd; the run as a whole is what the `lik` stage sees."""
    values = odd_run()
    _, scores = run(values)
    lik = [s for s in scores[3000:3060] if s.detector == "lik"]
    assert lik and max(s.raw for s in lik) > 0.5
    _, without = run(values, DetectorConfig(w_lik=0.0))
    assert all(s.detector != "lik" for s in without)
    assert sum(s.raw for s in scores[3000:3060]) > sum(s.raw for s in without[3000:3060])


def test_a_state_from_before_the_likelihood_stage_carries_on():
    """States written before `lk` existed (same STATE_VERSION) are read as they are."""
    values = daily(1500, noise=1.0)
    state, _ = run(values[:800])
    old = orjson.loads(orjson.dumps(state))
    del old["lk"]
    old["cal"].pop("lik", None)
    old["cal"].pop("sum", None)
    state, scores = run(values[800:], state=old, start=800)
    assert "lk" in state and all(0.0 <= s.score <= 1.0 for s in scores)


def test_joint_evidence_of_several_mild_signals_can_win():
    """`sum` calibrates the total log-rarity of all detectors; `w_sum=0` switches it off."""
    values = odd_run()
    _, scores = run(values)
    assert any(s.detector == "sum" for s in scores[3000:3060])
    _, without = run(values, DetectorConfig(w_sum=0.0))
    assert all(s.detector != "sum" for s in without)


def test_a_record_beaten_by_far_is_rarer_than_a_bare_record():
    """Beyond its record a joint statistic's p keeps falling (`record_slope`); 0 switches it off."""

    def p_at(b, tail):
        cal: dict = {}
        for past in [3, 4, 5] * 30:
            _calibrate(cal, "sum", past, 8000, tail)
        return _calibrate(cal, "sum", b, 8000, tail)

    assert p_at(7, 0.1) == pytest.approx(1 / 91)  # just past the record (and its slack)
    assert p_at(11, 0.1) == pytest.approx(1 / 91 * 10**-0.4)  # four bins further
    assert p_at(11, 0.0) == pytest.approx(1 / 91)
    assert p_at(5, 0.1) == p_at(5, 0.0)  # not a record: the tail plays no part


def test_fisher_tail_is_the_gamma_survival_function():
    """Fisher's method: −Σ ln p of k independent uniform p values is Gamma(k, 1)."""
    assert _fisher_tail(2.0, 1) == pytest.approx(math.exp(-2.0))
    assert _fisher_tail(2.0, 2) == pytest.approx(math.exp(-2.0) * 3.0)
    # chi-square with 10 degrees of freedom at 2·9.2 = 18.4 is 0.0486 (tables)
    assert _fisher_tail(9.2, 5) == pytest.approx(0.0486, abs=5e-4)
    assert _fisher_tail(0.0, 5) == 1.0


def test_t4_tail_is_students_t_with_four_degrees_of_freedom():
    assert _t4_tail(0.0) == pytest.approx(1.0)
    assert _t4_tail(2.776) == pytest.approx(0.05, abs=2e-4)  # two-sided 5 % point (tables)
    assert _t4_tail(4.604) == pytest.approx(0.01, abs=1e-4)  # two-sided 1 % point
    assert 0.0 <= _t4_tail(1e6) < 1e-15


def test_prior_speaks_while_history_is_short_and_fades_as_it_grows():
    """`prior_rows` pseudo-rows at a reference tail precede the series' own counts."""

    def p_at(rows, prior_p, prior_rows=100.0):
        cal: dict = {}
        for _ in range(rows):
            _calibrate(cal, "sum", 3, 100_000, 0.0, prior_rows, 0.5)
        return _calibrate(cal, "sum", 9, 100_000, 0.0, prior_rows, prior_p)

    # a record after 50 rows: no longer floored at 1/51 when the prior calls it rare
    assert p_at(50, 1e-6) == pytest.approx((1 + 100e-6) / 151)
    assert p_at(50, 1e-6) < 1 / 51
    # a joint log-rarity that independence would find common stays quiet
    assert p_at(50, 0.5) > 0.3
    # with a long history the counts decide: the prior moves p by at most 100 rows' worth
    assert p_at(20_000, 1e-6) == pytest.approx(1 / 20_001, rel=0.01)
    assert p_at(20_000, 0.5) < 100 / 20_000
    assert p_at(50, 1e-6, prior_rows=0.0) == pytest.approx(1 / 51)


def test_prior_rows_zero_is_the_bare_calibration():
    values = odd_run()
    _, with_prior = run(values)
    _, without = run(values, DetectorConfig(prior_rows=0.0))
    assert [s.raw for s in with_prior] != [s.raw for s in without]
    assert all(0.0 <= s.score <= 1.0 for s in with_prior)


def test_early_hour_of_day_outlier_is_rarer_than_its_short_history_allows():
    """With the t prior, an outlier for its hour soon after warm-up is not floored at 1/rows."""
    values = daily(600, noise=0.5)
    values[504] += 25.0  # at the daily trough: far off its hour, inside the range seen so far
    _, scores = run(values)
    _, bare = run(values, DetectorConfig(prior_rows=0.0))
    floor = -math.log10(1 / (504 - CFG.warmup_rows + 1)) / CFG.depth  # 1/(rows scored + 1)
    assert bare[504].raw < floor + 0.05 < scores[504].raw


def test_early_big_step_is_rarer_than_its_short_history_allows():
    """`dx`'s t prior is scaled by the running RMS step: a jump of many RMS steps soon after
    warm-up is not floored at 1/(rows + 1); `prior_rows=0` leaves the bare calibration."""
    only_dx = dict(w_ext=0.0, w_seq=0.0, w_kl=0.0, w_tod=0.0, w_sum=0.0, w_lik=0.0)
    values = daily(400, noise=0.3)
    values[300] += 10.0  # inside the range seen so far: ~13 RMS steps
    state, scores = run(values, DetectorConfig(**only_dx))
    _, bare = run(values, DetectorConfig(prior_rows=0.0, **only_dx))
    floor = -math.log10(1 / (300 - CFG.warmup_rows + 1)) / CFG.depth
    assert bare[300].raw <= floor + 1e-9 < floor + 0.05 < scores[300].raw
    assert state["dv"] > 0 and state["dvn"] == 399


def test_a_state_from_before_the_step_scale_carries_on():
    """States written before `dv`/`dvn` existed (same STATE_VERSION) are read as they are."""
    values = daily(1200, noise=1.0)
    state, _ = run(values[:700])
    old = orjson.loads(orjson.dumps(state))
    del old["dv"], old["dvn"]
    state, scores = run(values[700:], state=old, start=700)
    assert state["dv"] is not None and all(0.0 <= s.score <= 1.0 for s in scores)
