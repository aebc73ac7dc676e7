"""Online anomaly detector for one numeric series (v1 draft)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    warmup_rows: int = 150
    levels: int = 8
    extra_levels: int = 3
    order: int = 3
    ppm_beta: float = 1.0
    ppm_cap: int = 1200
    recent_len: int = 64
    kl_window: int = 48
    cal_cap: int = 8000
    refractory_rows: int = 100
    refractory_gamma: float = 0.0
    # component weights: score = 1 - p**w style
    w_ext: float = 1.0
    w_seq: float = 1.0
    w_dx: float = 1.0
    w_kl: float = 1.0
    ext_scale: float = 0.005
    ext_npow: float = 0.5
    ext_rate: bool = False
    w_savg: float = 0.0
    savg_len: int = 8
    depth: float = 4.0
    requant_frac: float = 0.5
    seq_smooth: int = 1


@dataclass(frozen=True, slots=True)
class Score:
    score: float
    expected: tuple[float, float] | None
    explanation: str


TAIL = 0.05
SURPRISE_BINS = 96  # 0.25-bit bins up to 24 bits
LOG_BINS = 96  # log2 bins for scale-free ratios, 0.25 per bin from 2^-8


def new_state(config: DetectorConfig | None = None) -> dict[str, Any]:
    return {
        "v": 1,
        "n": 0,
        "lo": None,
        "hi": None,
        "warm": [],
        "q": None,
        "recent": [],
        "syms": [],
        "ppm": {},
        "cal": {},
        "klL": None,
        "klS": None,
        "sbuf": [],
        "sup": [0.0, -(10**9)],
        "oor": 0.0,
        "last": None,
    }


def _sym(x: float, q: list[float], levels: int, extra: int) -> int:
    s = math.floor((x - q[0]) / q[1])
    if s < -extra:
        s = -extra
    elif s > levels - 1 + extra:
        s = levels - 1 + extra
    return s + extra


def _calibrate(cal: dict[str, list[Any]], key: str, b: int, nbins: int, cap: int) -> float:
    """Tail probability P(bin >= b) from the component's history, then record b."""
    entry = cal.get(key)
    if entry is None:
        entry = [[0] * nbins, 0]
        cal[key] = entry
    counts, total = entry
    if b < 0:
        b = 0
    elif b >= nbins:
        b = nbins - 1
    ge = 0
    for i in range(b, nbins):
        ge += counts[i]
    p = (ge + 1.0) / (total + 1.0)
    counts[b] += 1
    total += 1
    if total >= cap:
        total = 0
        for i in range(nbins):
            c = counts[i] >> 1
            counts[i] = c
            total += c
    entry[1] = total
    return p


def update(
    state: dict[str, Any], ts_ms: int, value: float, config: DetectorConfig | None = None
) -> tuple[dict[str, Any], Score]:
    cfg = config or DetectorConfig()
    x = float(value)
    st = state
    n = st["n"]
    st["n"] = n + 1
    levels = cfg.levels
    extra = cfg.extra_levels
    nsym = levels + 2 * extra

    lo, hi = st["lo"], st["hi"]
    recent = st["recent"]
    prev = recent[-1] if recent else None
    recent.append(x)
    if len(recent) > cfg.recent_len:
        del recent[0]

    if n < cfg.warmup_rows:
        st["warm"].append(x)
        st["lo"] = x if lo is None or x < lo else lo
        st["hi"] = x if hi is None or x > hi else hi
        return st, Score(0.0, None, "warming up")

    q = st["q"]
    if q is None:
        warm = st["warm"]
        wlo, whi = min(warm), max(warm)
        width = (whi - wlo) / levels
        if width <= 0:
            width = max(abs(wlo) * 1e-3, 1e-9)
        q = [wlo, width]
        st["q"] = q
        st["warm"] = []
        # train the sequence model on the warm-up rows
        syms: list[int] = []
        for w in warm:
            s = _sym(w, q, levels, extra)
            _ppm_update(st["ppm"], syms, s, cfg.order)
            syms.append(s)
            if len(syms) > cfg.order:
                del syms[0]
        st["syms"] = syms
        st["klL"] = [1.0] * nsym
        st["klS"] = [0] * nsym
        st["sbuf"] = []

    # ---- extreme: exceedance of the range ever seen
    rng = hi - lo
    if rng <= 0:
        rng = max(abs(hi) * 1e-3, 1e-9)
    e = max(x - hi, lo - x) / rng
    if x > hi:
        st["hi"] = x
    if x < lo:
        st["lo"] = x
    p_ext = 1.0
    if e > 0:
        if cfg.ext_rate:
            st["next"] = st.get("next", 0) + 1
            p_ext = math.exp(-e / cfg.ext_scale) * (st["next"] / (n + 1.0)) ** cfg.ext_npow
        else:
            p_ext = math.exp(-e / cfg.ext_scale) / (n + 1.0) ** cfg.ext_npow

    # ---- requantisation on persistent out-of-range
    qlo, qw = q
    qhi = qlo + qw * levels
    out = x < qlo or x > qhi
    st["oor"] += ((1.0 if out else 0.0) - st["oor"]) / 32.0
    if st["oor"] > cfg.requant_frac:
        nlo = min(qlo, *recent)
        nhi = max(qhi, *recent)
        _requantise(st, [nlo, (nhi - nlo) / levels], cfg)
        q = st["q"]
        st["oor"] = 0.0

    s = _sym(x, q, levels, extra)

    # ---- sequence surprise
    syms = st["syms"]
    ppm = st["ppm"]
    prob = _ppm_prob(ppm, syms, s, cfg.order, cfg.ppm_beta, nsym)
    surprise = -math.log2(prob)
    _ppm_update(ppm, syms, s, cfg.order)
    syms.append(s)
    if len(syms) > cfg.order:
        del syms[0]
    if len(ppm) > cfg.ppm_cap:
        _ppm_prune(ppm)
    cal = st["cal"]
    p_seq = _calibrate(cal, "seq", int(surprise * 4), SURPRISE_BINS, cfg.cal_cap)
    p_savg = 1.0
    if cfg.w_savg > 0:
        sh = st.setdefault("sh", [])
        sh.append(surprise)
        if len(sh) > cfg.savg_len:
            del sh[0]
        p_savg = _calibrate(cal, "savg", int(sum(sh) / len(sh) * 8), SURPRISE_BINS, cfg.cal_cap)

    # ---- first difference vs its history
    p_dx = 1.0
    if prev is not None:
        dx = abs(x - prev) / q[1]
        b = int((math.log2(dx + 1e-12) + 8.0) * 4.0) if dx > 0 else 0
        p_dx = _calibrate(cal, "dx", b, LOG_BINS, cfg.cal_cap)

    # ---- windowed distribution change (KL of recent symbols vs long-term)
    klL, klS, sbuf = st["klL"], st["klS"], st["sbuf"]
    sbuf.append(s)
    klS[s] += 1
    if len(sbuf) > cfg.kl_window:
        old = sbuf.pop(0)
        klS[old] -= 1
    p_kl = 1.0
    if len(sbuf) >= cfg.kl_window:
        totL = sum(klL)
        W = float(len(sbuf))
        kl = 0.0
        for i in range(nsym):
            c = klS[i]
            if c:
                ps = c / W
                kl += ps * math.log(ps * totL / klL[i])
        p_kl = _calibrate(cal, "kl", int(kl * 8), SURPRISE_BINS, cfg.cal_cap)
    klL[s] += 1.0
    if klL[s] > 4 * cfg.cal_cap / nsym:
        for i in range(nsym):
            klL[i] = klL[i] * 0.5 + 0.5

    # ---- combine: strongest evidence, mapped to [0, 1] on a log scale
    best = 0.0
    why = ""
    for name, p, w in (
        ("ext", p_ext, cfg.w_ext),
        ("seq", p_seq, cfg.w_seq),
        ("savg", p_savg, cfg.w_savg),
        ("dx", p_dx, cfg.w_dx),
        ("kl", p_kl, cfg.w_kl),
    ):
        if w <= 0:
            continue
        sc = -math.log10(max(p, 1e-300)) * w / cfg.depth
        if sc > best:
            best, why = sc, name
    raw = min(best, 1.0)

    # ---- refractory: after a peak, only report scores above the (decaying) peak
    peak, at = st["sup"]
    age = n - at
    level = (
        peak * (1.0 - age / cfg.refractory_rows) ** cfg.refractory_gamma
        if age < cfg.refractory_rows
        else 0.0
    )
    if raw > level:
        out_score = raw
        st["sup"] = [raw, n]
    else:
        out_score = 0.0
    return st, Score(out_score, (q[0], q[0] + q[1] * levels), why)


def _ppm_key(syms: list[int], k: int) -> str:
    return ",".join(map(str, syms[len(syms) - k :])) if k else ""


def _ppm_prob(
    ppm: dict[str, int], syms: list[int], s: int, order: int, beta: float, nsym: int
) -> float:
    p = 1.0 / nsym
    for k in range(0, min(order, len(syms)) + 1):
        ctx = _ppm_key(syms, k)
        tot = ppm.get(ctx + "|", 0)
        c = ppm.get(ctx + "|" + str(s), 0)
        p = (c + beta * p) / (tot + beta)
    return p


def _ppm_update(ppm: dict[str, int], syms: list[int], s: int, order: int) -> None:
    for k in range(0, min(order, len(syms)) + 1):
        ctx = _ppm_key(syms, k)
        ppm[ctx + "|"] = ppm.get(ctx + "|", 0) + 1
        key = ctx + "|" + str(s)
        ppm[key] = ppm.get(key, 0) + 1


def _ppm_prune(ppm: dict[str, int]) -> None:
    for key in list(ppm):
        c = ppm[key] >> 1
        if c:
            ppm[key] = c
        else:
            del ppm[key]
    # recompute totals from the surviving pairs
    totals: dict[str, int] = {}
    for key, c in ppm.items():
        ctx, sym = key.split("|")
        if sym:
            totals[ctx + "|"] = totals.get(ctx + "|", 0) + c
    for key in [k for k in ppm if k.endswith("|")]:
        del ppm[key]
    ppm.update(totals)


def _requantise(st: dict[str, Any], q: list[float], cfg: DetectorConfig) -> None:
    if q[1] <= 0:
        q[1] = max(abs(q[0]) * 1e-3, 1e-9)
    st["q"] = q
    st["ppm"] = {}
    st["syms"] = []
    nsym = cfg.levels + 2 * cfg.extra_levels
    st["klL"] = [1.0] * nsym
    st["klS"] = [0] * nsym
    st["sbuf"] = []
