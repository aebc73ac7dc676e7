"""Numenta Anomaly Benchmark (NAB v1): run Vigil's detector over the corpus and score it.

Two halves, both Faust-free:

* `run_nab(data_dir, out_dir)` feeds every `DATA/<category>/<file>.csv` (columns
  `timestamp,value`) row by row through the exact online detector used by the stream
  processor (`tables.anomaly.detector.update`) and writes NAB's results layout,
  `OUT/vigil/<category>/vigil_<file>.csv` with columns `timestamp,value,anomaly_score`.
* `score_results(results_dir, windows_file, data_dir)` re-implements NAB's scorer
  (`nab/sweeper.py`, `nab/optimizer.py`, `Runner.normalize`) for the three profiles:

  - per file, the first `min(floor(0.15·N), 750)` rows are probationary and never scored;
  - a window `[t1, t2]` is entered on the row whose timestamp equals `t1` and left after the
    row equal to `t2` (timestamps must match rows exactly, as in NAB); inside a window of
    width `W` rows ending at row `R`, row `i` has the sweep score
    `σ(−(R − i + 1)/W) · A_TP / σ(−1)` with `σ(p) = 2/(1 + e^{5p}) − 1` (−1 for `p ≥ 3`);
  - outside windows a row scores `A_FP · σ(|R_prev − i| / (W_prev − 1))` after a window and
    `−A_FP` before the first one;
  - for a threshold θ the detections are the scored rows with `anomaly_score ≥ θ`; a window
    counts its best (= earliest) detection, or `−A_FN` when it has none; every FP adds its
    (negative) sweep score;
  - the threshold is swept over every distinct score in the corpus (plus 1.1, "detect
    nothing") and the best corpus total is kept per profile;
  - normalised score = `100·(S − S_null)/(S_perfect − S_null)` where `S_null` is the score of
    NAB's null detector (constant 0.5, i.e. it never detects at its best threshold) and
    `S_perfect = (number of labelled windows) × A_TP`.  With a subset of the corpus only the
    windows of the files present are counted.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tables.anomaly.detector import METRIC_DETECTOR, DetectorConfig, new_state, update

DETECTOR_NAME = "vigil"

PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11},
}

PROBATION_PERCENT = 0.15
PROBATIONARY = "probationary"


# --------------------------------------------------------------------------------------------
# Reading and writing NAB files
# --------------------------------------------------------------------------------------------


def parse_timestamp(text: str) -> datetime:
    """NAB timestamps: `2014-04-01 00:00:00` in data, `2014-04-01 00:00:00.000000` in labels."""
    return datetime.fromisoformat(text.strip())


def timestamp_ms(text: str) -> int:
    """Milliseconds since the epoch, treating the naive NAB timestamp as UTC."""
    dt = parse_timestamp(text)
    return int((dt - datetime(1970, 1, 1)).total_seconds() * 1000)


def read_series(path: str) -> tuple[list[str], list[float]]:
    """Read a NAB data file: raw timestamp strings (kept verbatim) and float values."""
    timestamps: list[str] = []
    values: list[float] = []
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        ts_col = header.index("timestamp")
        val_col = header.index("value")
        for row in reader:
            if not row:
                continue
            timestamps.append(row[ts_col])
            values.append(float(row[val_col]))
    return timestamps, values


def list_data_files(data_dir: str) -> list[str]:
    """Relative paths `<category>/<file>.csv` of every series under DATA, sorted."""
    found = []
    for category in sorted(os.listdir(data_dir)):
        cat_dir = os.path.join(data_dir, category)
        if not os.path.isdir(cat_dir):
            continue
        for name in sorted(os.listdir(cat_dir)):
            if name.endswith(".csv"):
                found.append(f"{category}/{name}")
    return found


def score_series(
    timestamps: Sequence[str], values: Sequence[float], config: DetectorConfig | None = None
) -> list[float]:
    """Run the online detector over one series, one row at a time, exactly as the stream does."""
    cfg = config or DetectorConfig()
    state = new_state(cfg)
    out = []
    for ts, value in zip(timestamps, values, strict=True):
        state, score = update(state, timestamp_ms(ts), value, cfg)
        out.append(score.score)
    return out


def run_nab(data_dir: str, out_dir: str, config: DetectorConfig | None = None) -> dict[str, int]:
    """Score every `DATA/<category>/<file>.csv`; write `OUT/vigil/<category>/vigil_<file>.csv`.

    Returns the number of rows written per relative data path.
    """
    cfg = config or DetectorConfig()
    written: dict[str, int] = {}
    for rel in list_data_files(data_dir):
        category, name = rel.split("/", 1)
        timestamps, values = read_series(os.path.join(data_dir, category, name))
        scores = score_series(timestamps, values, cfg)
        target_dir = os.path.join(out_dir, DETECTOR_NAME, category)
        os.makedirs(target_dir, exist_ok=True)
        with open(os.path.join(target_dir, f"{DETECTOR_NAME}_{name}"), "w", newline="") as fh:
            fh.write("timestamp,value,anomaly_score\n")
            fh.writelines(
                f"{ts},{val!r},{sc!r}\n"
                for ts, val, sc in zip(timestamps, values, scores, strict=True)
            )
        written[rel] = len(timestamps)
    return written


def read_results(results_dir: str) -> dict[str, tuple[list[str], list[float]]]:
    """Read NAB results files; keys are data-relative paths `<category>/<file>.csv`.

    RESULTS may be the output directory (holding `vigil/`) or the detector directory itself.
    """
    root = results_dir
    if os.path.isdir(os.path.join(results_dir, DETECTOR_NAME)):
        root = os.path.join(results_dir, DETECTOR_NAME)
    prefix = f"{DETECTOR_NAME}_"
    out: dict[str, tuple[list[str], list[float]]] = {}
    for category in sorted(os.listdir(root)):
        cat_dir = os.path.join(root, category)
        if not os.path.isdir(cat_dir):
            continue
        for name in sorted(os.listdir(cat_dir)):
            if not (name.endswith(".csv") and name.startswith(prefix)):
                continue
            timestamps: list[str] = []
            scores: list[float] = []
            with open(os.path.join(cat_dir, name), newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader)
                ts_col = header.index("timestamp")
                sc_col = header.index("anomaly_score")
                for row in reader:
                    if row:
                        timestamps.append(row[ts_col])
                        scores.append(float(row[sc_col]))
            out[f"{category}/{name[len(prefix) :]}"] = (timestamps, scores)
    return out


# --------------------------------------------------------------------------------------------
# NAB scoring (nab/sweeper.py semantics)
# --------------------------------------------------------------------------------------------


def scaled_sigmoid(position: float) -> float:
    """NAB's σ: 2/(1+e^{5p}) − 1, and −1 for positions at least 3 window widths past the end."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_length(num_rows: int) -> float:
    """`min(floor(0.15·N), 0.15·5000)` rows, as in `Sweeper._getProbationaryLength`."""
    return min(math.floor(PROBATION_PERCENT * num_rows), PROBATION_PERCENT * 5000)


@dataclass(slots=True)
class SweepPoint:
    """One row: its anomaly score, its NAB sweep score and its window (None: outside)."""

    anomaly_score: float
    sweep_score: float
    window: str | None


def sweep_file(
    timestamps: Sequence[str],
    anomaly_scores: Sequence[float],
    windows: Iterable[Sequence[str]],
    name: str,
    cost: dict[str, float],
) -> list[SweepPoint]:
    """`Sweeper.calcSweepScore`: the sweep score and window name of every row of one file."""
    if len(timestamps) != len(anomaly_scores):
        raise ValueError(f"{name}: {len(timestamps)} timestamps but {len(anomaly_scores)} scores")
    parsed = [parse_timestamp(t) for t in timestamps]
    first_index: dict[datetime, int] = {}
    for i, t in enumerate(parsed):
        first_index.setdefault(t, i)
    limits = []
    for start, end in windows:
        t1, t2 = parse_timestamp(start), parse_timestamp(end)
        if t1 not in first_index or t2 not in first_index:
            raise ValueError(f"{name}: window [{start}, {end}] does not match rows exactly")
        limits.append((t1, t2))
    limits.sort()

    max_tp = scaled_sigmoid(-1.0)
    probation = probation_length(len(parsed))
    tp_w, fp_w = cost["tpWeight"], cost["fpWeight"]

    points: list[SweepPoint] = []
    cur: tuple[datetime, datetime] | None = None
    cur_name: str | None = None
    cur_right = cur_width = 0.0
    prev_right: float | None = None
    prev_width = 0.0
    for i, (t, score) in enumerate(zip(parsed, anomaly_scores, strict=True)):
        if limits and t == limits[0][0]:
            cur = limits.pop(0)
            cur_name = f"{name}|{cur[0]}"
            cur_right = first_index[cur[1]]
            cur_width = float(cur_right - first_index[cur[0]] + 1)
        if cur is not None:
            position = -(cur_right - i + 1) / cur_width
            weighted = scaled_sigmoid(position) * tp_w / max_tp
        else:
            # no preceding window: as if infinitely far from one (scores -A_FP)
            position = 3.0 if prev_right is None else abs(prev_right - i) / (prev_width - 1)
            weighted = scaled_sigmoid(position) * fp_w
        window_name = cur_name if i >= probation else PROBATIONARY
        points.append(SweepPoint(float(score), weighted, window_name))
        if cur is not None and t == cur[1]:
            prev_right, prev_width = i, cur_width
            cur, cur_name = None, None
    return points


@dataclass(slots=True)
class ThresholdScore:
    threshold: float
    score: float
    tp: int
    tn: int
    fp: int
    fn: int


def score_by_threshold(
    points: Iterable[SweepPoint], cost: dict[str, float]
) -> list[ThresholdScore]:
    """`Sweeper.calcScoreByThreshold`: the corpus score for every candidate threshold.

    Candidates are 1.1 (nothing detected) and every distinct anomaly score, highest first; a
    threshold θ means "rows with anomaly_score ≥ θ are detections".
    """
    scorable = sorted(
        (p for p in points if p.window != PROBATIONARY),
        key=lambda p: p.anomaly_score,
        reverse=True,
    )
    parts: dict[str, float] = {"fp": 0.0}
    for p in scorable:
        if p.window is not None:
            parts[p.window] = -cost["fnWeight"]
    tn = sum(1 for p in scorable if p.window is None)
    fn = len(scorable) - tn
    tp = fp = 0
    # Running total instead of re-summing `parts` at each threshold (same numbers, O(N)).
    total = sum(parts.values())
    results: list[ThresholdScore] = []
    threshold = 1.1
    for p in scorable:
        if p.anomaly_score != threshold:
            results.append(ThresholdScore(threshold, total, tp, tn, fp, fn))
            threshold = p.anomaly_score
        if p.window is None:
            fp += 1
            tn -= 1
            parts["fp"] += p.sweep_score
            total += p.sweep_score
        else:
            tp += 1
            fn -= 1
            old = parts[p.window]
            if p.sweep_score > old:
                parts[p.window] = p.sweep_score
                total += p.sweep_score - old
    results.append(ThresholdScore(threshold, total, tp, tn, fp, fn))
    return results


def best_threshold(rows: list[ThresholdScore]) -> ThresholdScore:
    """The optimizer keeps the highest score (first of equals, i.e. the highest threshold)."""
    return sorted(rows, key=lambda r: r.score, reverse=True)[0]


@dataclass
class FileScore:
    path: str
    score: float
    windows: int
    detected: int
    fp: int


@dataclass
class ProfileResult:
    profile: str
    threshold: float
    raw_score: float
    null_score: float
    perfect_score: float
    normalized: float
    files: list[FileScore] = field(default_factory=list)


def file_scores_at(
    points_by_file: dict[str, list[SweepPoint]], threshold: float, cost: dict[str, float]
) -> list[FileScore]:
    """Per-file breakdown at one threshold (`Sweeper.scoreDataSet`), summing to the corpus."""
    out = []
    for path, points in points_by_file.items():
        windows: dict[str, float] = {}
        fp_sum = 0.0
        fp = 0
        for p in points:
            if p.window == PROBATIONARY:
                continue
            if p.window is not None:
                windows.setdefault(p.window, -cost["fnWeight"])
                if p.anomaly_score >= threshold and p.sweep_score > windows[p.window]:
                    windows[p.window] = p.sweep_score
            elif p.anomaly_score >= threshold:
                fp += 1
                fp_sum += p.sweep_score
        detected = sum(1 for v in windows.values() if v != -cost["fnWeight"])
        out.append(FileScore(path, fp_sum + sum(windows.values()), len(windows), detected, fp))
    return out


def load_windows(windows_file: str) -> dict[str, list[list[str]]]:
    with open(windows_file) as fh:
        return json.load(fh)


def score_corpus(
    series: dict[str, tuple[list[str], list[float]]],
    windows: dict[str, list[list[str]]],
    profiles: dict[str, dict[str, float]] | None = None,
) -> dict[str, ProfileResult]:
    """Score `{relpath: (timestamps, anomaly_scores)}` against the label windows, per profile.

    Only files present in `series` are scored, and only their windows count toward
    S_perfect (NAB counts every window of its label file, which is the same on the full corpus).
    """
    profiles = profiles or PROFILES
    missing = [p for p in series if p not in windows]
    if missing:
        raise ValueError(f"no label entry for {missing[:3]}")
    num_windows = sum(len(windows[p]) for p in series)
    results: dict[str, ProfileResult] = {}
    for profile, cost in profiles.items():
        by_file: dict[str, list[SweepPoint]] = {}
        null_points: list[SweepPoint] = []
        for path, (timestamps, scores) in series.items():
            pts = sweep_file(timestamps, scores, windows[path], path, cost)
            by_file[path] = pts
            null_points.extend(SweepPoint(0.5, p.sweep_score, p.window) for p in pts)
        all_points = [p for pts in by_file.values() for p in pts]
        best = best_threshold(score_by_threshold(all_points, cost))
        null = best_threshold(score_by_threshold(null_points, cost)).score
        perfect = num_windows * cost["tpWeight"]
        denom = perfect - null
        normalized = 100.0 * (best.score - null) / denom if denom else 0.0
        results[profile] = ProfileResult(
            profile=profile,
            threshold=best.threshold,
            raw_score=best.score,
            null_score=null,
            perfect_score=perfect,
            normalized=normalized,
            files=file_scores_at(by_file, best.threshold, cost),
        )
    return results


def score_results(
    results_dir: str, windows_file: str, data_dir: str | None = None, *, verbose: bool = True
) -> dict[str, ProfileResult]:
    """Score NAB results files (`RESULTS[/vigil]/<category>/vigil_<file>.csv`).

    With DATA given, the timestamps are taken from the data files (as NAB does) and every
    results file must have exactly one score per data row.  Prints the per-profile table.
    """
    series = read_results(results_dir)
    if data_dir is not None:
        for path, (_, scores) in list(series.items()):
            data_ts, _ = read_series(os.path.join(data_dir, path))
            if len(data_ts) != len(scores):
                raise ValueError(f"{path}: {len(scores)} scores for {len(data_ts)} data rows")
            series[path] = (data_ts, scores)
    windows = load_windows(windows_file)
    results = score_corpus(series, windows)
    if verbose:
        print(format_results(results, len(series)))
    return results


def format_results(results: dict[str, ProfileResult], num_files: int) -> str:
    lines = [
        f"NAB scores over {num_files} series "
        f"({int(next(iter(results.values())).perfect_score)} windows)",
        f"{'profile':<20} {'score':>7} {'threshold':>10} {'raw':>9} {'null':>8} {'perfect':>8}",
    ]
    for r in results.values():
        lines.append(
            f"{r.profile:<20} {r.normalized:7.2f} {r.threshold:10.4f} {r.raw_score:9.3f} "
            f"{r.null_score:8.2f} {r.perfect_score:8.2f}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# CLI entry points (wired into `vigil nab` / `vigil nab-score` by app/cli.py)
# --------------------------------------------------------------------------------------------


def nab_main(data_dir: str, out_dir: str) -> int:
    """`vigil nab --data DIR --out DIR`: run the detector over the corpus, print a summary."""
    if not os.path.isdir(data_dir):
        print(f"no such data directory: {data_dir}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    written = run_nab(data_dir, out_dir, METRIC_DETECTOR)
    elapsed = time.perf_counter() - started
    rows = sum(written.values())
    print(f"{'series':<60} {'rows':>7}")
    for rel, n in written.items():
        print(f"{rel:<60} {n:>7}")
    rate = rows / elapsed if elapsed else 0.0
    print(f"{len(written)} series, {rows} rows in {elapsed:.1f}s ({rate:,.0f} rows/s)")
    print(f"results in {os.path.join(out_dir, DETECTOR_NAME)}")
    return 0 if written else 1


def score_main(results_dir: str, windows_file: str, data_dir: str | None = None) -> int:
    """`vigil nab-score --results DIR --windows FILE [--data DIR]`: print NAB scores."""
    if not os.path.isdir(results_dir):
        print(f"no such results directory: {results_dir}", file=sys.stderr)
        return 2
    if not os.path.isfile(windows_file):
        print(f"no such windows file: {windows_file}", file=sys.stderr)
        return 2
    try:
        results = score_results(results_dir, windows_file, data_dir, verbose=False)
    except ValueError as exc:
        print(f"cannot score: {exc}", file=sys.stderr)
        return 1
    num_files = len(next(iter(results.values())).files) if results else 0
    if not num_files:
        print("no results files found", file=sys.stderr)
        return 1
    print(format_results(results, num_files))
    std = results["standard"]
    print()
    print(f"per series at the standard threshold {std.threshold:.4f}:")
    print(f"{'series':<60} {'score':>7} {'windows':>8} {'found':>6} {'FP rows':>8}")
    for f in std.files:
        print(f"{f.path:<60} {f.score:7.3f} {f.windows:8d} {f.detected:6d} {f.fp:8d}")
    return 0
