"""Leave-one-category-out (LOCO) evaluation of the metric detector on a NAB data folder.

For every category `C` of the corpus (the four shared ones: artificialNoAnomaly,
artificialWithAnomaly, realAWSCloudwatch, realKnownCause) and every NAB profile:

1. run every configuration of a small grid over every series (the exact `update` the
   pipeline runs, one row at a time; each series' outputs are computed once per config);
2. on the files *outside* `C`, pick the (configuration, threshold) pair with the best NAB
   score (NAB's own threshold sweep, `app.nab.score_by_threshold`);
3. score the files *of* `C` with that configuration at that threshold, normalised with the
   windows of `C` only (`100·(S − S_null)/(S_perfect − S_null)`, as NAB normalises a corpus).

A category without label windows (artificialNoAnomaly) has no normalised score (0/0): it is
reported as its held-out false-positive rows and raw cost, and the LOCO mean is over the
categories that have windows.  Beside the four folds the table shows

* `pooled`: all 35 files scored at once, each file's detections coming from the fold that held
  its category out (configuration and threshold chosen without it): a cross-validated all-35;
* `all-35`: the best grid configuration and threshold chosen on all files (in-sample), and
  the score of the shipped `METRIC_DETECTOR` (what `vigil nab` measures).

Nothing here depends on a file's or category's name beyond grouping files by their folder.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from app.nab import (
    PROBATIONARY,
    PROFILES,
    SweepPoint,
    best_threshold,
    list_data_files,
    load_windows,
    read_series,
    score_by_threshold,
    sweep_file,
    timestamp_ms,
)
from tables.anomaly.detector import METRIC_DETECTOR, DetectorConfig, new_state, update

#: The tuning grid: the free parameters with the largest effect, a few values each.  Kept
#: small (about 7 s of detector time per configuration on the 35 series).
GRID_AXES: dict[str, Sequence[float | int]] = {
    "ext_scale": (0.005, 0.03, 0.1),
    "refractory_rows": (75, 150, 300),
}


def grid_configs(base: DetectorConfig = METRIC_DETECTOR) -> list[DetectorConfig]:
    """Every combination of `GRID_AXES` applied to `base` (the base itself comes first)."""
    configs = [base]
    combos: list[dict[str, float | int]] = [{}]
    for name, values in GRID_AXES.items():
        combos = [{**c, name: v} for c in combos for v in values]
    for combo in combos:
        cfg = replace(base, **combo)
        if cfg not in configs:
            configs.append(cfg)
    return configs


@dataclass(frozen=True, slots=True)
class Corpus:
    """Series of a NAB folder: per relative path, epoch-ms timestamps and values."""

    ts_ms: dict[str, list[int]]
    values: dict[str, list[float]]
    timestamps: dict[str, list[str]]


def load_corpus(data_dir: str) -> Corpus:
    ts_ms: dict[str, list[int]] = {}
    values: dict[str, list[float]] = {}
    stamps: dict[str, list[str]] = {}
    for rel in list_data_files(data_dir):
        t, v = read_series(os.path.join(data_dir, rel))
        stamps[rel], values[rel] = t, v
        ts_ms[rel] = [timestamp_ms(s) for s in t]
    return Corpus(ts_ms, values, stamps)


def run_config(corpus: Corpus, cfg: DetectorConfig) -> dict[str, list[float]]:
    """The detector's reported scores for every series (one fresh state per series)."""
    out: dict[str, list[float]] = {}
    for rel, values in corpus.values.items():
        state = new_state(cfg)
        scores = []
        for ts, v in zip(corpus.ts_ms[rel], values, strict=True):
            state, sc = update(state, ts, v, cfg)
            scores.append(sc.score)
        out[rel] = scores
    return out


def category(rel: str) -> str:
    return rel.split("/", 1)[0]


def _points(
    templates: dict[str, list[SweepPoint]], scores: dict[str, list[float]], files: Sequence[str]
) -> list[SweepPoint]:
    return [
        SweepPoint(s, p.sweep_score, p.window)
        for rel in files
        for p, s in zip(templates[rel], scores[rel], strict=True)
    ]


def total_at(points: Sequence[SweepPoint], threshold: float, cost: dict[str, float]) -> float:
    """NAB's corpus score at one threshold (best detection per window, every FP charged)."""
    windows: dict[str, float] = {}
    fp = 0.0
    for p in points:
        if p.window == PROBATIONARY:
            continue
        if p.window is None:
            if p.anomaly_score >= threshold:
                fp += p.sweep_score
            continue
        best = windows.setdefault(p.window, -cost["fnWeight"])
        if p.anomaly_score >= threshold and p.sweep_score > best:
            windows[p.window] = p.sweep_score
    return fp + sum(windows.values())


def _null_and_perfect(points: Sequence[SweepPoint], cost: dict[str, float]) -> tuple[float, float]:
    null = [SweepPoint(0.5, p.sweep_score, p.window) for p in points]
    windows = {p.window for p in points if p.window not in (None, PROBATIONARY)}
    return best_threshold(score_by_threshold(null, cost)).score, len(windows) * cost["tpWeight"]


def normalised(points: Sequence[SweepPoint], raw: float, cost: dict[str, float]) -> float | None:
    null, perfect = _null_and_perfect(points, cost)
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else None


@dataclass
class Fold:
    held_out: str
    config: int
    threshold: float
    score: float | None  # normalised; None for a category without windows
    raw: float
    fp_rows: int


@dataclass
class LocoResult:
    profile: str
    folds: list[Fold]
    pooled: float
    all_config: int
    all_threshold: float
    all_score: float
    shipped: float

    @property
    def mean(self) -> float:
        scored = [f.score for f in self.folds if f.score is not None]
        return sum(scored) / len(scored) if scored else 0.0


def _best(
    templates: dict[str, list[SweepPoint]],
    outputs: list[dict[str, list[float]]],
    files: Sequence[str],
    cost: dict[str, float],
) -> tuple[int, float, float]:
    """(config index, threshold, raw score) maximising NAB's score on `files`."""
    best: tuple[int, float, float] | None = None
    for i, scores in enumerate(outputs):
        row = best_threshold(score_by_threshold(_points(templates, scores, files), cost))
        if best is None or row.score > best[2]:
            best = (i, row.threshold, row.score)
    assert best is not None
    return best


def loco(
    corpus: Corpus,
    windows: dict[str, list[list[str]]],
    configs: Sequence[DetectorConfig],
    profiles: dict[str, dict[str, float]] | None = None,
    shipped: DetectorConfig = METRIC_DETECTOR,
    outputs: list[dict[str, list[float]]] | None = None,
) -> tuple[list[LocoResult], list[dict[str, list[float]]]]:
    """Run every config over the corpus (unless its `outputs` are given, one per config), then
    the LOCO folds for every profile."""
    profiles = profiles or PROFILES
    if outputs is None:
        outputs = [run_config(corpus, cfg) for cfg in configs]
    shipped_out = outputs[list(configs).index(shipped)] if shipped in configs else None
    if shipped_out is None:
        shipped_out = run_config(corpus, shipped)
    files = list(corpus.values)
    cats = sorted({category(f) for f in files})
    results = []
    for profile, cost in profiles.items():
        templates = {
            rel: sweep_file(
                corpus.timestamps[rel], [0.0] * len(corpus.timestamps[rel]), windows[rel], rel, cost
            )
            for rel in files
        }
        folds: list[Fold] = []
        pooled_scores: dict[str, list[float]] = {}
        for cat in cats:
            train = [f for f in files if category(f) != cat]
            test = [f for f in files if category(f) == cat]
            ci, thr, _ = _best(templates, outputs, train, cost)
            pts = _points(templates, outputs[ci], test)
            raw = total_at(pts, thr, cost)
            fps = sum(1 for p in pts if p.window is None and p.anomaly_score >= thr)
            folds.append(Fold(cat, ci, thr, normalised(pts, raw, cost), raw, fps))
            for rel in test:  # binarise at the fold's threshold so one sweep fits all folds
                pooled_scores[rel] = [1.0 if s >= thr else 0.0 for s in outputs[ci][rel]]
        all_pts = _points(templates, pooled_scores, files)
        pooled = normalised(all_pts, total_at(all_pts, 1.0, cost), cost) or 0.0
        ai, athr, araw = _best(templates, outputs, files, cost)
        all_score = normalised(_points(templates, outputs[ai], files), araw, cost) or 0.0
        ship_pts = _points(templates, shipped_out, files)
        ship_raw = best_threshold(score_by_threshold(ship_pts, cost)).score
        results.append(
            LocoResult(
                profile,
                folds,
                pooled,
                ai,
                athr,
                all_score,
                normalised(ship_pts, ship_raw, cost) or 0.0,
            )
        )
    return results, outputs


def describe(cfg: DetectorConfig, base: DetectorConfig = METRIC_DETECTOR) -> str:
    """The grid axes of `cfg` that differ from `base` (`base` if none)."""
    diffs = [f"{k}={getattr(cfg, k)}" for k in GRID_AXES if getattr(cfg, k) != getattr(base, k)]
    return ",".join(diffs) or "base"


def format_loco(results: Sequence[LocoResult], configs: Sequence[DetectorConfig]) -> str:
    cats = [f.held_out for f in results[0].folds]
    head = f"{'profile':<20}" + "".join(f" {c[:22]:>22}" for c in cats)
    head += f" {'LOCO mean':>10} {'pooled':>7} {'all-35':>7} {'shipped':>8}"
    lines = ["held-out NAB score per category (tuned on the other three)", head]
    for r in results:
        cells = "".join(
            f" {f'{f.score:.2f}':>22}"
            if f.score is not None
            else f" {f'({f.fp_rows} FP, {f.raw:+.2f})':>22}"
            for f in r.folds
        )
        lines.append(
            f"{r.profile:<20}{cells} {r.mean:10.2f} {r.pooled:7.2f} {r.all_score:7.2f}"
            f" {r.shipped:8.2f}"
        )
    lines.append("")
    lines.append("chosen configuration and threshold per fold:")
    for r in results:
        picks = "; ".join(
            f"{f.held_out[:12]}: {describe(configs[f.config])} θ={f.threshold:.4f}" for f in r.folds
        )
        lines.append(f"  {r.profile}: {picks}")
        lines.append(f"    all-35: {describe(configs[r.all_config])} θ={r.all_threshold:.4f}")
    return "\n".join(lines)


def loco_main(data_dir: str, windows_file: str, cuts: bool = False) -> int:
    """`vigil nab-score --loco [--cuts] --data DIR --windows FILE`: print the LOCO table, and
    with `cuts` the short-history proxy (`app.nab_short`) from the same detector runs."""
    if not os.path.isdir(data_dir) or not os.path.isfile(windows_file):
        print(f"need a data dir and a windows file: {data_dir}, {windows_file}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    corpus = load_corpus(data_dir)
    windows = load_windows(windows_file)
    configs = grid_configs()
    if not cuts:
        results, _ = loco(corpus, windows, configs)
        print(format_loco(results, configs))
    else:
        from app.nab_short import format_short, make_cuts, short_loco

        results, short = short_loco(corpus, windows, configs)
        cut_corpus, cut_windows = make_cuts(corpus, windows)
        print(format_loco(results, configs))
        print()
        print(format_short(short, len(cut_corpus.values), sum(map(len, cut_windows.values()))))
    elapsed = time.perf_counter() - started
    extra = " + cuts" if cuts else ""
    print(f"{len(configs)} configurations × {len(corpus.values)} series{extra} in {elapsed:.0f}s")
    return 0
