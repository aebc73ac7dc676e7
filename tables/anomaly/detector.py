"""Online anomaly detector for one numeric series: pure Python, one pass, bounded JSON state.

Usage (one state per series, e.g. one Faust table value per entity+metric)::

    cfg = DetectorConfig()            # or DetectorConfig(refractory_rows=300, ...)
    state = new_state(cfg)            # a plain dict: store it anywhere orjson can
    state, score = update(state, ts_ms, value, cfg)
    if score.score >= ALERT_THRESHOLD: alert(score.explanation, score.expected)

`update` folds one row into the state (mutating and returning the same dict) and scores it
using only the past: nothing ever looks ahead, so the score of a row never changes when more
rows follow.  The state holds only lists, dicts of str keys, ints, floats and strings; it
round-trips through JSON exactly (orjson in, orjson out, same scores after) and stays under
64 KiB serialised (about 17 KiB in practice, bounded by `ppm_cap`).  Keep one config per
state: changing `levels`, `extra_levels` or `tod_bins` needs a fresh state.

Method: seven cheap detectors, each turned into a tail probability by its own running history,
and the strongest one reported (see docs/anomaly.md):

``ext``  new extremes: how far the value lies outside the range seen so far (relative to that
         range), discounted by how often this series sets new extremes at all;
``seq``  sequence surprise: an order-3 variable-order Markov model (PPM-style blending) over
         the value quantised into 8 levels of the range learnt during warm-up, scored as
         −log2 P(level | previous levels);
``dx``   the size of the step from the previous value;
``kl``   distribution shift: relative entropy of the last 48 levels against the long-run level
         histogram;
``tod``  time-of-day profile: distance from the running mean of the same hour of day, in
         running standard deviations;

and two that read the others' evidence rather than the value:

``sum``  joint evidence: the sum of the five log-rarities of the row (several detectors mildly
         surprised at once), calibrated against its own history like the rest;
``lik``  likelihood of the recent surprise (as HTM's anomaly likelihood): an EWMA over ~10 rows
         of the row's best log-rarity, calibrated likewise: a run of individually mild surprises.

Beyond its own record, a joint stage's p keeps falling with the distance to that record
(`record_slope`): a record broken by far is rarer than one broken by a hair.  The histograms
of `sum`, `tod` and `dx` start from `prior_rows` pseudo-rows of a reference tail (Fisher's
method for `sum`; Student's t with 4 degrees of freedom for `tod`'s z score and for the step
in RMS steps), so while the history is short their p is not floored at 1/(rows + 1) and
common values stay quiet.

Each raw statistic is binned (0.25 bits or 0.25·log2 units per bin) and compared with the
histogram of its own past values (bounded, halved every `cal_cap` rows), giving
p = P(stat ≥ current − one bin): a value within one bin of the previous record is not a new
record, which keeps slowly drifting but normal statistics quiet.  `ext` computes its p
directly as exp(−exceedance/ext_scale) × (rate of new extremes so far).  The score is the
max over detectors of −log10(p)·weight/depth, clipped to [0, 1], so one global threshold
means the same rarity on every series.  A refractory period then keeps
one alert per incident: for `refractory_rows` rows after a peak, only scores that beat that
peak by `refractory_margin` are reported (others are reported as 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

STATE_VERSION = 1

#: Histogram bins of the calibrated statistics: 0.25 per bin (bits, or log2 of a ratio).
_NBINS = 96
_LOG_OFFSET = 8.0  # log2 ratios from 2^-8 upwards
#: bins of slack below the current one counted as "at least as extreme" (see the docstring)
CAL_SLACK = 1
_LN10 = math.log(10.0)

#: The single threshold that maximised the NAB standard profile (0.6986 on the local corpus).
ALERT_THRESHOLD = 0.7


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Tunables; the defaults are the ones measured on NAB (docs/anomaly.md)."""

    #: rows used only to learn (score 0) before anything is reported
    warmup_rows: int = 150
    #: quantisation: levels across the warm-up range, plus extra levels on each side
    levels: int = 8
    extra_levels: int = 3
    #: Markov order of the sequence model and its size cap (entries; counts halve beyond)
    order: int = 3
    ppm_cap: int = 1200
    #: rows of recent values kept (used to re-quantise after a lasting level shift)
    recent_len: int = 64
    #: window of the distribution-shift detector, in rows
    kl_window: int = 48
    #: calibration histograms halve once they hold this many rows (the memory horizon)
    cal_cap: int = 8000
    #: time-of-day profile: bins per day, EWMA weight, visits before a bin is trusted
    tod_bins: int = 24
    tod_alpha: float = 0.05
    tod_min: int = 12
    #: new extremes: e-folding of p per fraction of the known range exceeded
    ext_scale: float = 0.005
    #: detector weights (0 disables one)
    w_ext: float = 1.0
    w_seq: float = 1.0
    w_dx: float = 1.0
    w_kl: float = 1.0
    w_tod: float = 1.0
    #: −log10(p) that maps to score 1.0
    depth: float = 4.0
    #: share of recent rows outside the quantiser range that triggers re-quantisation
    requant_frac: float = 0.5
    #: refractory period after a peak, in rows, and the margin a new peak must beat it by
    refractory_rows: int = 150
    refractory_margin: float = 0.05
    #: weight of the joint evidence: the sum of every detector's log-rarity, calibrated
    w_sum: float = 1.0
    #: likelihood of the recent surprise (HTM-style): EWMA span in rows and weight
    lik_span: int = 10
    w_lik: float = 1.0
    #: the joint stages (`sum`, `lik`) beyond their own record: score added per score unit by
    #: which the statistic beats its previous record (0: a record is just p = 1/(rows + 1))
    record_slope: float = 0.3
    #: reference tails that precede the calibration histograms of `sum` (Fisher's method),
    #: `tod` and `dx` (Student t, 4 degrees of freedom), weighed like this many rows of history
    prior_rows: float = 300.0
    #: EWMA weight of the mean squared step, the scale of `dx`'s reference tail
    step_alpha: float = 0.01


@dataclass(frozen=True, slots=True)
class Score:
    """One row's verdict: `score` in [0, 1], the `expected` (low, high) band, and why."""

    score: float
    expected: tuple[float, float] | None
    explanation: str
    #: the detector that produced the score ("" while warming up or for non-finite input)
    detector: str = ""
    #: the score before the refractory period was applied
    raw: float = 0.0


def new_state(config: DetectorConfig | None = None) -> dict[str, Any]:
    """A fresh, JSON-serialisable state for one series."""
    return {
        "v": STATE_VERSION,
        "n": 0,  # rows seen
        "lo": None,  # range seen so far
        "hi": None,
        "next": 0,  # rows that set a new extreme (after warm-up)
        "warm": [],  # warm-up values (emptied after warm-up)
        "q": None,  # quantiser [low edge, level width]
        "recent": [],  # last `recent_len` values
        "oor": 0.0,  # EWMA of "outside the quantiser range"
        "syms": [],  # last `order` levels
        "ppm": {},  # "ctx|sym" -> count, "ctx|" -> total
        "cal": {},  # detector -> [bin counts, total]
        "klL": None,  # long-run level histogram (float counts)
        "klS": None,  # level counts in the last `kl_window` rows
        "sbuf": [],  # the last `kl_window` levels
        "tod": None,  # per hour-of-day [mean, variance, visits]
        "sup": [0.0, -(10**9)],  # refractory: [peak score, row]
        "lk": 0.0,  # EWMA of the per-row log-rarity (likelihood detector)
        "dv": None,  # EWMA of the squared step x - previous (the scale of dx's prior)
        "dvn": 0,  # steps in that EWMA (capped)
    }


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _level(x: float, q: list[float], levels: int, extra: int) -> int:
    s = math.floor((x - q[0]) / q[1])
    if s < -extra:
        s = -extra
    elif s > levels - 1 + extra:
        s = levels - 1 + extra
    return s + extra


def _log_bin(ratio: float) -> int:
    return int((math.log2(ratio) + _LOG_OFFSET) * 4.0) if ratio > 0 else 0


def _slack_floor(b: int) -> float:
    """The smallest ratio `_calibrate` counts as at least as extreme as log bin `b` (the lower
    edge of its slack bin): where a reference tail for that bin starts."""
    return 2.0 ** ((b - CAL_SLACK) / 4.0 - _LOG_OFFSET)


def _calibrate(
    cal: dict[str, list[Any]],
    key: str,
    b: int,
    cap: int,
    tail: float = 0.0,
    prior_rows: float = 0.0,
    prior_p: float = 1.0,
) -> float:
    """P(statistic ≥ bin b) under this detector's own history, then record bin b.

    With `tail` > 0, a new record (no past bin within the slack) is rarer than 1/(rows + 1)
    by `tail` decades per bin beyond the previous record: how far a record is beaten counts.
    With `prior_rows` > 0, the history is preceded by that many pseudo-rows whose share at or
    beyond the statistic is `prior_p` (a parametric tail that speaks while history is short
    and is outweighed by the series' own counts as they grow).
    """
    entry = cal.get(key)
    if entry is None:
        entry = [[0] * _NBINS, 0]
        cal[key] = entry
    counts, total = entry
    if b < 0:
        b = 0
    elif b >= _NBINS:
        b = _NBINS - 1
    ge = 0
    for i in range(b - CAL_SLACK if b > CAL_SLACK else 0, _NBINS):
        ge += counts[i]
    p = ge + 1.0
    if tail > 0.0 and ge == 0 and total > 0:
        top = b - CAL_SLACK - 1  # the previous record: the highest bin below the slack
        while top > 0 and not counts[top]:
            top -= 1
        p *= 10.0 ** (-tail * (b - CAL_SLACK - 1 - top))
    p = (p + prior_rows * prior_p) / (total + 1.0 + prior_rows)
    counts[b] += 1
    total += 1
    if total >= cap:  # forget: halve every count
        total = 0
        for i in range(_NBINS):
            c = counts[i] >> 1
            counts[i] = c
            total += c
    entry[1] = total
    return p


def _fisher_tail(nats: float, k: int) -> float:
    """P(Gamma(k, 1) ≥ nats): Fisher's combined p of k independent tests, −Σ ln p = `nats`."""
    term = acc = 1.0
    for j in range(1, k):
        term *= nats / j
        acc += term
    p = math.exp(-nats) * acc
    return p if p < 1.0 else 1.0


def _t4_tail(z: float) -> float:
    """P(|T| ≥ z) for Student's t with 4 degrees of freedom (closed form)."""
    s = z / math.sqrt(4.0 + z * z)
    p = 1.0 - 1.5 * s + 0.5 * s * s * s
    return p if p > 0.0 else 0.0


def _ctx(syms: list[int], k: int) -> str:
    return ",".join(map(str, syms[len(syms) - k :])) if k else ""


def _ppm_prob(ppm: dict[str, int], syms: list[int], s: int, order: int, nsym: int) -> float:
    """Blend orders 0..K: P_k = (c_k(s) + P_{k-1}) / (n_k + 1), starting from uniform."""
    p = 1.0 / nsym
    ss = "|" + str(s)
    for k in range(min(order, len(syms)) + 1):
        ctx = _ctx(syms, k)
        p = (ppm.get(ctx + ss, 0) + p) / (ppm.get(ctx + "|", 0) + 1.0)
    return p


def _ppm_learn(ppm: dict[str, int], syms: list[int], s: int, order: int) -> None:
    ss = "|" + str(s)
    for k in range(min(order, len(syms)) + 1):
        ctx = _ctx(syms, k)
        ppm[ctx + "|"] = ppm.get(ctx + "|", 0) + 1
        ppm[ctx + ss] = ppm.get(ctx + ss, 0) + 1


def _ppm_prune(ppm: dict[str, int]) -> None:
    """Halve every count, drop the ones that reach 0 and recompute the context totals."""
    totals: dict[str, int] = {}
    for key in list(ppm):
        ctx, sym = key.split("|")
        if not sym:
            del ppm[key]
            continue
        c = ppm[key] >> 1
        if c:
            ppm[key] = c
            totals[ctx + "|"] = totals.get(ctx + "|", 0) + c
        else:
            del ppm[key]
    ppm.update(totals)


def _quantiser(lo: float, hi: float, levels: int) -> list[float]:
    width = (hi - lo) / levels
    if width <= 0:
        width = max(abs(lo) * 1e-3, 1e-9)
    return [lo, width]


def _reset_levels(st: dict[str, Any], cfg: DetectorConfig) -> None:
    nsym = cfg.levels + 2 * cfg.extra_levels
    st["ppm"] = {}
    st["syms"] = []
    st["klL"] = [1.0] * nsym
    st["klS"] = [0] * nsym
    st["sbuf"] = []


def _fmt(x: float) -> str:
    return f"{x:.4g}"


# --------------------------------------------------------------------------------------------
# the detector
# --------------------------------------------------------------------------------------------


def update(
    state: dict[str, Any], ts_ms: int, value: float, config: DetectorConfig | None = None
) -> tuple[dict[str, Any], Score]:
    """Fold one row into `state` (mutated and returned) and score it against the past only."""
    cfg = config or DetectorConfig()
    x = float(value)
    st = state
    if not math.isfinite(x):
        return st, Score(0.0, None, "ignored: value is not a finite number")
    n = st["n"]
    st["n"] = n + 1
    levels, extra, order = cfg.levels, cfg.extra_levels, cfg.order
    nsym = levels + 2 * extra

    lo, hi = st["lo"], st["hi"]
    recent = st["recent"]
    prev = recent[-1] if recent else None
    recent.append(x)
    if len(recent) > cfg.recent_len:
        del recent[0]

    step_var = st.get("dv")  # the mean squared step before this row
    if prev is not None:
        d2 = (x - prev) * (x - prev)
        dvn = st.get("dvn", 0)
        dvn = dvn + 1 if dvn < 1_000_000 else dvn
        st["dvn"] = dvn
        st["dv"] = (
            d2 if step_var is None else step_var + (d2 - step_var) * max(cfg.step_alpha, 1.0 / dvn)
        )

    if n < cfg.warmup_rows:
        st["warm"].append(x)
        st["lo"] = x if lo is None or x < lo else lo
        st["hi"] = x if hi is None or x > hi else hi
        _learn_tod(st, ts_ms, x, cfg, None)
        return st, Score(0.0, None, f"warming up ({n + 1}/{cfg.warmup_rows} rows)")

    q = st["q"]
    if q is None:  # end of warm-up: fix the quantiser and train the level models
        warm = st["warm"]
        q = _quantiser(min(warm), max(warm), levels)
        st["q"] = q
        st["warm"] = []
        _reset_levels(st, cfg)
        ppm, syms = st["ppm"], st["syms"]
        for w in warm:
            s = _level(w, q, levels, extra)
            _ppm_learn(ppm, syms, s, order)
            syms.append(s)
            if len(syms) > order:
                del syms[0]
            st["klL"][s] += 1.0
    cal = st["cal"]
    cap = cfg.cal_cap

    # -- ext: outside the range seen so far, discounted by the series' rate of new extremes
    rng = hi - lo
    if rng <= 0:
        rng = max(abs(hi) * 1e-3, 1e-9)
    exceed = max(x - hi, lo - x) / rng
    p_ext = 1.0
    if exceed > 0:
        st["next"] += 1
        p_ext = math.exp(-exceed / cfg.ext_scale) * st["next"] / (n + 1.0)
        if x > hi:
            st["hi"] = x
        else:
            st["lo"] = x

    # -- re-quantise after a lasting shift outside the quantiser's range
    qlo, qw = q
    outside = x < qlo or x > qlo + qw * levels
    st["oor"] += ((1.0 if outside else 0.0) - st["oor"]) / 32.0
    if st["oor"] > cfg.requant_frac:
        q = _quantiser(min(qlo, *recent), max(qlo + qw * levels, *recent), levels)
        st["q"] = q
        st["oor"] = 0.0
        _reset_levels(st, cfg)
    s = _level(x, q, levels, extra)

    # -- seq: surprise of this level given the previous ones
    syms, ppm = st["syms"], st["ppm"]
    surprise = -math.log2(_ppm_prob(ppm, syms, s, order, nsym))
    _ppm_learn(ppm, syms, s, order)
    syms.append(s)
    if len(syms) > order:
        del syms[0]
    if len(ppm) > cfg.ppm_cap:
        _ppm_prune(ppm)
    p_seq = _calibrate(cal, "seq", int(surprise * 4.0), cap) if cfg.w_seq > 0 else 1.0

    # -- dx: size of the step from the previous value, in level widths
    p_dx = 1.0
    step = 0.0
    if prev is not None and cfg.w_dx > 0:
        step = abs(x - prev) / q[1]
        b = _log_bin(step)
        prior_rows, prior = 0.0, 1.0
        if cfg.prior_rows > 0 and step_var:  # the step in RMS steps, where the slack starts
            prior_rows = cfg.prior_rows
            prior = _t4_tail(_slack_floor(b) * q[1] / math.sqrt(step_var))
        p_dx = _calibrate(cal, "dx", b, cap, 0.0, prior_rows, prior)

    # -- kl: recent level distribution against the long-run one
    kl_l, kl_s, sbuf = st["klL"], st["klS"], st["sbuf"]
    sbuf.append(s)
    kl_s[s] += 1
    if len(sbuf) > cfg.kl_window:
        kl_s[sbuf.pop(0)] -= 1
    p_kl = 1.0
    kl = 0.0
    if len(sbuf) >= cfg.kl_window and cfg.w_kl > 0:
        tot_l = sum(kl_l)
        width = float(len(sbuf))
        for i in range(nsym):
            c = kl_s[i]
            if c:
                ps = c / width
                kl += ps * math.log(ps * tot_l / kl_l[i])
        p_kl = _calibrate(cal, "kl", int(kl * 8.0), cap)
    kl_l[s] += 1.0
    if kl_l[s] > 4.0 * cap / nsym:  # forget: halve the long-run histogram
        for i in range(nsym):
            kl_l[i] = kl_l[i] * 0.5 + 0.5

    # -- tod: distance from this hour of day's running profile
    tod_band = _learn_tod(st, ts_ms, x, cfg, q[1])
    p_tod = 1.0
    z = 0.0
    if tod_band is not None and cfg.w_tod > 0:
        z = tod_band[2]
        b = _log_bin(z)
        prior = 1.0
        if cfg.prior_rows > 0:  # the t tail where the histogram starts counting (the slack)
            prior = _t4_tail(_slack_floor(b))
        p_tod = _calibrate(cal, "tod", b, cap, 0.0, cfg.prior_rows, prior)

    # -- combine: the strongest evidence, on a log scale
    best, detector = 0.0, ""
    total = 0.0
    tests = 0
    for name, p, w in (
        ("ext", p_ext, cfg.w_ext),
        ("seq", p_seq, cfg.w_seq),
        ("dx", p_dx, cfg.w_dx),
        ("kl", p_kl, cfg.w_kl),
        ("tod", p_tod, cfg.w_tod),
    ):
        if w > 0:
            tests += 1
            if p < 1.0:
                sc = -math.log10(max(p, 1e-300)) * w / cfg.depth
                total += sc
                if sc > best:
                    best, detector = sc, name
    if cfg.w_sum > 0:  # several detectors mildly surprised at once: is that combination rare?
        tail = cfg.record_slope * cfg.depth / 16.0  # decades per bin of 1/16
        prior = 1.0
        if cfg.prior_rows > 0:  # Fisher's method, as if the detectors were independent
            prior = _fisher_tail(total * cfg.depth * _LN10, tests)
        p_sum = _calibrate(cal, "sum", int(total * 16.0), cap, tail, cfg.prior_rows, prior)
        sc = -math.log10(p_sum) * cfg.w_sum / cfg.depth
        if sc > best:
            best, detector = sc, "sum"
    if cfg.w_lik > 0:  # is the recent surprise level itself unusual?
        lk = st.get("lk", 0.0)
        lk += (best - lk) * 2.0 / (cfg.lik_span + 1.0)
        st["lk"] = lk
        p_lik = _calibrate(cal, "lik", int(lk * 32.0), cap, cfg.record_slope * cfg.depth / 32.0)
        sc = -math.log10(p_lik) * cfg.w_lik / cfg.depth
        if sc > best:
            best, detector = sc, "lik"
    raw = best if best < 1.0 else 1.0

    # -- refractory: one report per incident
    peak, at = st["sup"]
    age = n - at
    # after the period anything goes; within it only a clearly stronger peak
    reported = raw if age >= cfg.refractory_rows or raw > peak + cfg.refractory_margin else 0.0
    if reported > 0.0:
        st["sup"] = [reported, n]

    # -- expectation and explanation
    if tod_band is not None:
        expected = (max(tod_band[0], st["lo"]), min(tod_band[1], st["hi"]))
    else:
        expected = (st["lo"], st["hi"])
    if reported <= 0.0:
        why = "normal" if raw < 0.5 else f"suppressed: repeat of an incident {age} rows ago"
    elif detector == "ext":
        side = "above the highest" if x > lo else "below the lowest"
        why = (
            f"value {_fmt(x)} {side} value seen ({_fmt(hi if x > lo else lo)}) "
            f"by {exceed:.0%} of the known range"
        )
    elif detector == "seq":
        after = [k - extra for k in syms[:-1]]
        why = f"unusual sequence: level {s - extra} of {levels} after {after} ({surprise:.1f} bits)"
    elif detector == "dx":
        why = f"abrupt change from {_fmt(prev or 0.0)} to {_fmt(x)} ({step:.1f} level widths)"
    elif detector == "kl":
        why = f"distribution of the last {cfg.kl_window} values shifted (KL {kl:.2f} nats)"
    elif detector == "sum":
        why = f"several signals at once: joint log-rarity {total * cfg.depth:.1f} (rare for it)"
    elif detector == "lik":
        why = (
            f"a run of unusual values: the last ~{cfg.lik_span} rows average "
            f"p≈{10 ** (-st['lk'] * cfg.depth):.1e} each"
        )
    else:
        why = f"value {_fmt(x)} is {z:.1f} sd from the usual for this hour of day"
    if reported > 0.0:
        why += f"; p≈{10 ** (-raw * cfg.depth):.1e}"
    return st, Score(reported, expected, why, detector, raw)


def _learn_tod(
    st: dict[str, Any], ts_ms: int, x: float, cfg: DetectorConfig, width: float | None
) -> tuple[float, float, float] | None:
    """Update this hour-of-day's EWMA mean/variance; return (low, high, |z|) if trusted."""
    if cfg.w_tod <= 0:
        return None
    tod = st["tod"]
    if tod is None:
        tod = [[0.0, 0.0, 0] for _ in range(cfg.tod_bins)]
        st["tod"] = tod
    cell = tod[(int(ts_ms) % 86_400_000) * cfg.tod_bins // 86_400_000]
    m, v, c = cell
    band = None
    if width is not None and c >= cfg.tod_min:
        sd = math.sqrt(v + (width * 0.1) ** 2)
        band = (m - 3.0 * sd, m + 3.0 * sd, abs(x - m) / sd)
    if c == 0:
        cell[0], cell[1], cell[2] = x, 0.0, 1
    else:
        a = max(cfg.tod_alpha, 1.0 / (c + 1))
        d = x - m
        cell[0] = m + a * d
        cell[1] = (1.0 - a) * (v + a * d * d)
        cell[2] = c + 1 if c < 1_000_000 else c
    return band


#: The metric detector as the pipeline runs it and `vigil nab` measures it: a new extreme must
#: exceed the known range by about a tenth of it to count (ext_scale 0.1, not 0.005), since
#: one-minute window means set hair-thin new records all the time. With the `sum` and `lik`
#: stages (their record tail and the reference-tail priors) this is also the configuration that
#: leave-one-category-out tuning picks on all 35 local NAB series (75.24 standard;
#: docs/anomaly.md).
METRIC_DETECTOR = DetectorConfig(ext_scale=0.1)
