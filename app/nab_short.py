"""Short-history proxy: leave-one-category-out over short cuts of the shared NAB series.

The unseen NAB categories hold many short series (1,500-2,500 rows), which a detector tuned
on 4,000-20,000-row series meets with little history.  This module measures that case from the
shared data only:

* `make_cuts` cuts every labelled window of every series out with some history before it: a
  cut of `L` rows (1,500 / 2,000 / 2,500, in turn) placed so that the window's centre (NAB
  centres a window on its anomaly) falls at 30 / 50 / 70 % of the cut (in turn, the two cycles
  interleaved so that every length meets every position).  Inside the cut, every window whose
  centre lies in it is relabelled as NAB labels a series of `L` rows: centred on the same row,
  `0.1 · L / (windows in the cut)` rows wide.  A series without windows gives one cut from its
  middle (false positives only).  The cut is a fresh series: the detector starts from a new
  state at its first row and NAB's probationary period (15 % of the cut) applies to it.
* `short_loco` runs every grid configuration over the full series and the cuts, then for each
  category `C`: picks the (configuration, threshold) with the best NAB score on the full series
  **and** the cuts outside `C` (one threshold for long and short series, as NAB's optimiser
  picks one for its whole corpus) and scores the cuts of `C` with it, normalised with their
  windows.  Reported: the held-out mean over the categories with windows, the cuts pooled
  across folds, and the shipped detector on the cuts at the full series' best threshold and at
  the cuts' own best (the gap between the two is the short-history calibration gap).

Nothing depends on a file's or category's name beyond grouping files by their folder; the
positions come from the label windows' centres, as any NAB-style labelling would place them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.nab import PROFILES, best_threshold, parse_timestamp, score_by_threshold
from app.nab_loco import (
    Corpus,
    LocoResult,
    _best,
    _points,
    category,
    loco,
    normalised,
    run_config,
    sweep_file,
    total_at,
)
from tables.anomaly.detector import METRIC_DETECTOR, DetectorConfig

#: Cut lengths and where a window's centre falls in its cut (as a fraction of the cut), used
#: in turn: window k gets CUT_LENGTHS[k % 3] and CUT_CENTRES[(k // 3) % 3].
CUT_LENGTHS: tuple[int, ...] = (1500, 2000, 2500)
CUT_CENTRES: tuple[float, ...] = (0.3, 0.5, 0.7)
#: NAB's labelling rule: the windows of a series cover this share of its rows, split evenly.
WINDOW_SHARE = 0.1


def make_cuts(
    corpus: Corpus, windows: dict[str, list[list[str]]]
) -> tuple[Corpus, dict[str, list[list[str]]]]:
    """Short series cut from `corpus` around its label windows (see the module docstring).

    Keys are `<category>/<file>.csv@<first row>+<rows>`; windows are relabelled per cut.
    """
    ts_ms: dict[str, list[int]] = {}
    values: dict[str, list[float]] = {}
    stamps: dict[str, list[str]] = {}
    cut_windows: dict[str, list[list[str]]] = {}
    k = 0
    for rel in corpus.values:
        t = corpus.timestamps[rel]
        n = len(t)
        row = {parse_timestamp(s): i for i, s in enumerate(t)}
        centres = [
            (row[parse_timestamp(a)] + row[parse_timestamp(b)]) // 2 for a, b in windows[rel]
        ]
        cuts: list[tuple[int, int]] = []
        if not centres:
            length = min(CUT_LENGTHS[k % len(CUT_LENGTHS)], n)
            cuts.append(((n - length) // 2, length))
            k += 1
        for c in centres:
            length = min(CUT_LENGTHS[k % len(CUT_LENGTHS)], n)
            frac = CUT_CENTRES[(k // len(CUT_LENGTHS)) % len(CUT_CENTRES)]
            start = min(max(c - int(frac * length), 0), n - length)
            cuts.append((start, length))
            k += 1
        for start, length in cuts:
            key = f"{rel}@{start}+{length}"
            inside = [c - start for c in centres if start <= c < start + length]
            half = int(WINDOW_SHARE * length / len(inside)) // 2 if inside else 0
            sub = t[start : start + length]
            cut_windows[key] = [
                [sub[max(c - half, 0)], sub[min(c + half, length - 1)]] for c in inside
            ]
            stamps[key] = sub
            ts_ms[key] = corpus.ts_ms[rel][start : start + length]
            values[key] = corpus.values[rel][start : start + length]
    return Corpus(ts_ms, values, stamps), cut_windows


@dataclass
class ShortResult:
    """The proxy for one profile: held-out cut scores per category and their summaries."""

    profile: str
    folds: list[tuple[str, float | None, float, int]]  # category, score, threshold, FP rows
    pooled: float
    shipped_at_full: float  # shipped config on all cuts at the full series' best threshold
    shipped_own: float  # shipped config on all cuts at the cuts' own best threshold
    full_threshold: float
    own_threshold: float

    @property
    def mean(self) -> float:
        scored = [s for _, s, _, _ in self.folds if s is not None]
        return sum(scored) / len(scored) if scored else 0.0


def short_loco(
    corpus: Corpus,
    windows: dict[str, list[list[str]]],
    configs: Sequence[DetectorConfig],
    profiles: dict[str, dict[str, float]] | None = None,
    shipped: DetectorConfig = METRIC_DETECTOR,
) -> tuple[list[LocoResult], list[ShortResult]]:
    """The full-series LOCO (`app.nab_loco.loco`) and the short-history proxy, one run each."""
    profiles = profiles or PROFILES
    cuts, cut_windows = make_cuts(corpus, windows)
    both = Corpus(
        {**corpus.ts_ms, **cuts.ts_ms},
        {**corpus.values, **cuts.values},
        {**corpus.timestamps, **cuts.timestamps},
    )
    all_windows = {**windows, **cut_windows}
    configs = list(configs)
    if shipped not in configs:
        configs.append(shipped)
    outputs = [run_config(both, cfg) for cfg in configs]
    si = configs.index(shipped)
    full_files, cut_files = list(corpus.values), list(cuts.values)
    full_out = [{f: out[f] for f in full_files} for out in outputs]
    full_results, _ = loco(corpus, windows, configs, profiles, shipped, outputs=full_out)
    cats = sorted({category(f) for f in full_files})
    results = []
    for profile, cost in profiles.items():
        templates = {
            rel: sweep_file(
                both.timestamps[rel], [0.0] * len(both.timestamps[rel]), all_windows[rel], rel, cost
            )
            for rel in both.values
        }
        folds = []
        pooled_scores: dict[str, list[float]] = {}
        for cat in cats:
            train = [f for f in both.values if category(f) != cat]
            test = [f for f in cut_files if category(f) == cat]
            ci, thr, _ = _best(templates, outputs, train, cost)
            pts = _points(templates, outputs[ci], test)
            fps = sum(1 for p in pts if p.window is None and p.anomaly_score >= thr)
            folds.append((cat, normalised(pts, total_at(pts, thr, cost), cost), thr, fps))
            for rel in test:
                pooled_scores[rel] = [1.0 if s >= thr else 0.0 for s in outputs[ci][rel]]
        pooled_pts = _points(templates, pooled_scores, cut_files)
        pooled = normalised(pooled_pts, total_at(pooled_pts, 1.0, cost), cost) or 0.0
        full_pts = _points(templates, outputs[si], full_files)
        full_thr = best_threshold(score_by_threshold(full_pts, cost)).threshold
        cut_pts = _points(templates, outputs[si], cut_files)
        at_full = normalised(cut_pts, total_at(cut_pts, full_thr, cost), cost) or 0.0
        own = best_threshold(score_by_threshold(cut_pts, cost))
        results.append(
            ShortResult(
                profile,
                folds,
                pooled,
                at_full,
                normalised(cut_pts, own.score, cost) or 0.0,
                full_thr,
                own.threshold,
            )
        )
    return full_results, results


def format_short(results: Sequence[ShortResult], num_cuts: int, num_windows: int) -> str:
    cats = [c for c, _, _, _ in results[0].folds]
    head = f"{'profile':<20}" + "".join(f" {c[:22]:>22}" for c in cats)
    head += f" {'LOCO mean':>10} {'pooled':>7} {'at full θ':>10} {'own θ':>13}"
    lines = [
        f"short-history proxy: {num_cuts} cuts of 1,500-2,500 rows, {num_windows} windows; "
        "held-out cuts per category (tuned on the other three, full series and cuts)",
        head,
    ]
    for r in results:
        cells = "".join(
            f" {f'{s:.2f}':>22}" if s is not None else f" {f'({fp} FP)':>22}"
            for _, s, _, fp in r.folds
        )
        lines.append(
            f"{r.profile:<20}{cells} {r.mean:10.2f} {r.pooled:7.2f} {r.shipped_at_full:10.2f}"
            f" {r.shipped_own:6.2f} {f'θ={r.own_threshold:.2f}':>6}"
        )
    return "\n".join(lines)
