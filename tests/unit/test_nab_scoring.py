"""NAB scoring (app/nab.py) on small hand-computed cases, plus the results-file round trip."""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime, timedelta

import pytest

from app import nab

STD = nab.PROFILES["standard"]
LOW_FP = nab.PROFILES["reward_low_FP_rate"]
LOW_FN = nab.PROFILES["reward_low_FN_rate"]
N = 100  # rows per toy file: probation = floor(0.15 * 100) = 15 rows
T0 = datetime(2014, 4, 1)


def sigma(p: float) -> float:
    """NAB's scaled sigmoid, written out independently of app/nab.py."""
    return -1.0 if p >= 3.0 else 2.0 / (1.0 + math.exp(5.0 * p)) - 1.0


def ts(i: int) -> str:
    return (T0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S")


def label(i: int) -> str:
    """Label files write timestamps with microseconds."""
    return (T0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S.%f")


def toy(detect_rows=(), n=N, high=1.0):
    scores = [0.0] * n
    for r in detect_rows:
        scores[r] = high
    return [ts(i) for i in range(n)], scores


WINDOW = [label(40), label(49)]  # rows 40..49: width 10, right edge 49


def score_of(detect_rows, windows=(WINDOW,), profile="standard", n=N):
    series = {"cat/f.csv": toy(detect_rows, n)}
    res = nab.score_corpus(series, {"cat/f.csv": [list(w) for w in windows]})
    return res[profile]


def test_scaled_sigmoid_matches_nab():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.0) == -1.0


def test_probation_length():
    assert nab.probation_length(100) == 15
    assert nab.probation_length(4032) == 604
    assert nab.probation_length(22695) == 750


def test_detection_at_window_start_scores_full_tp():
    r = score_of([40])
    # position -(49 - 40 + 1)/10 = -1 -> sigma(-1) * A_TP / sigma(-1) = 1
    assert r.raw_score == pytest.approx(1.0)
    assert r.threshold == 1.0
    assert r.normalized == pytest.approx(100.0)


def test_detection_at_window_end_scores_little():
    r = score_of([49])
    expected = sigma(-1 / 10) / sigma(-1.0)  # position -(49 - 49 + 1)/10
    assert expected == pytest.approx(0.2482, abs=1e-4)
    assert r.raw_score == pytest.approx(expected)


def test_detection_mid_window():
    r = score_of([45])
    assert r.raw_score == pytest.approx(sigma(-5 / 10) / sigma(-1.0))


def test_only_the_earliest_detection_in_a_window_counts():
    r = score_of([41, 45, 49])
    assert r.raw_score == pytest.approx(sigma(-9 / 10) / sigma(-1.0))
    assert r.files[0].detected == 1 and r.files[0].fp == 0


def test_fp_before_first_window_costs_a_full_fp():
    # the sweep may not pick the threshold that includes the FP, so score explicitly
    points = nab.sweep_file(*toy([20, 45]), [WINDOW], "cat/f.csv", STD)
    assert points[20].window is None
    assert points[20].sweep_score == pytest.approx(-0.11)
    rows = nab.score_by_threshold(points, STD)
    at_one = next(r for r in rows if r.threshold == 1.0)
    assert at_one.score == pytest.approx(sigma(-0.5) / sigma(-1.0) - 0.11)
    assert at_one.fp == 1 and at_one.tp == 1


def test_fp_after_window_is_weighted_by_distance_from_its_end():
    points = nab.sweep_file(*toy([55]), [WINDOW], "cat/f.csv", STD)
    # |49 - 55| / (10 - 1) window widths past the right edge
    expected = sigma(6 / 9) * 0.11
    assert points[55].sweep_score == pytest.approx(expected)
    assert expected == pytest.approx(-0.1024, abs=1e-4)
    # just after the window an FP is nearly free, far away it costs the full A_FP
    assert points[50].sweep_score == pytest.approx(sigma(1 / 9) * 0.11)
    assert points[99].sweep_score == pytest.approx(-0.11)
    rows = nab.score_by_threshold(points, STD)
    at_one = next(r for r in rows if r.threshold == 1.0)
    assert at_one.score == pytest.approx(-1.0 + expected)  # window missed + FP
    assert rows[-1].threshold == 0.0 and rows[-1].fp == 85 - 10  # 0.0 flags every scored row


def test_fp_after_window_doubles_in_low_fp_profile():
    points = nab.sweep_file(*toy([55]), [WINDOW], "cat/f.csv", LOW_FP)
    assert points[55].sweep_score == pytest.approx(sigma(6 / 9) * 0.22)


def test_missed_window_costs_a_fn():
    r = score_of([])
    assert r.raw_score == pytest.approx(-1.0)
    assert r.normalized == pytest.approx(0.0)
    assert score_of([], profile="reward_low_FN_rate").raw_score == pytest.approx(-2.0)


def test_probation_rows_are_not_scored():
    points = nab.sweep_file(*toy([5, 14]), [WINDOW], "cat/f.csv", STD)
    assert [p.window for p in points[:15]] == [nab.PROBATIONARY] * 15
    assert points[15].window is None
    # a detection in probation is neither an FP nor anything else: best is still -1 (miss)
    r = score_of([5, 14])
    assert r.raw_score == pytest.approx(-1.0)
    assert r.files[0].fp == 0


def test_window_inside_probation_only_counts_its_scored_rows():
    # window rows 10..19; rows 10..14 are probationary, so a detection at 10 is ignored
    w = [label(10), label(19)]
    assert score_of([10], windows=[w]).raw_score == pytest.approx(-1.0)
    # row 15 is scored, with its position in the full window: -(19 - 15 + 1)/10
    r = score_of([15], windows=[w])
    assert r.raw_score == pytest.approx(sigma(-0.5) / sigma(-1.0))


def test_normalisation_null_and_perfect_detectors():
    windows = {"a/x.csv": [WINDOW], "b/y.csv": [[label(30), label(39)], [label(70), label(79)]]}
    perfect = {"a/x.csv": toy([40]), "b/y.csv": toy([30, 70])}
    null = {"a/x.csv": toy([]), "b/y.csv": toy([])}
    for name, profile in nab.PROFILES.items():
        p = nab.score_corpus(perfect, windows)[name]
        z = nab.score_corpus(null, windows)[name]
        assert p.perfect_score == pytest.approx(3 * profile["tpWeight"])
        assert p.null_score == pytest.approx(-3 * profile["fnWeight"])
        assert p.normalized == pytest.approx(100.0)
        assert z.normalized == pytest.approx(0.0)


def test_threshold_sweep_picks_the_best_single_corpus_threshold():
    # file a: a TP at 0.9 and an FP before the window at 0.6; file b: a TP at 0.6
    a_ts, a_sc = toy([])
    a_sc[45], a_sc[20] = 0.9, 0.6
    b_ts, b_sc = toy([])
    b_sc[40] = 0.6
    series = {"a/x.csv": (a_ts, a_sc), "b/y.csv": (b_ts, b_sc)}
    windows = {"a/x.csv": [WINDOW], "b/y.csv": [WINDOW]}
    r = nab.score_corpus(series, windows)["standard"]
    tp_a = sigma(-0.5) / sigma(-1.0)
    # threshold 0.6 catches b's window (+1 instead of -1) at the price of one FP (-0.11)
    assert r.threshold == 0.6
    assert r.raw_score == pytest.approx(tp_a + 1.0 - 0.11)
    rows = nab.score_by_threshold(
        [p for path in series for p in nab.sweep_file(*series[path], windows[path], path, STD)],
        STD,
    )
    assert [row.threshold for row in rows] == [1.1, 0.9, 0.6, 0.0]
    assert rows[0].score == pytest.approx(-2.0)
    assert rows[1].score == pytest.approx(tp_a - 1.0)
    assert sum(f.score for f in r.files) == pytest.approx(r.raw_score)


def test_window_must_match_rows_exactly():
    with pytest.raises(ValueError, match="does not match"):
        between_rows = "2014-04-01 03:21:30.000000"
        nab.sweep_file(*toy([]), [[between_rows, label(49)]], "cat/f.csv", STD)


def test_no_label_entry_is_an_error():
    with pytest.raises(ValueError, match="no label entry"):
        nab.score_corpus({"cat/f.csv": toy([])}, {})


def write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_run_nab_layout_and_score_round_trip(tmp_path, capsys):
    data = tmp_path / "data"
    n = 1200
    values = [10.0 + (i % 24) * 0.5 for i in range(n)]
    values[1000] = 500.0  # an obvious spike inside the window
    write_csv(
        data / "cat" / "spiky.csv",
        [["timestamp", "value"]] + [[ts(i), v] for i, v in enumerate(values)],
    )
    write_csv(
        data / "cat" / "quiet.csv", [["timestamp", "value"]] + [[ts(i), 5.0] for i in range(600)]
    )
    windows_file = tmp_path / "windows.json"
    windows_file.write_text(
        json.dumps(
            {
                "cat/spiky.csv": [[label(950), label(1049)]],
                "cat/quiet.csv": [],
                "other/absent.csv": [[label(1), label(2)]],  # not present: ignored
            }
        )
    )
    out = tmp_path / "out"
    assert nab.nab_main(str(data), str(out)) == 0
    result = out / "vigil" / "cat" / "vigil_spiky.csv"
    with open(result) as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == n + 1
    assert rows[1][0] == ts(0)  # timestamps kept as in the input
    assert float(rows[1001][2]) >= 0.9

    results = nab.score_results(str(out), str(windows_file), str(data), verbose=False)
    std = results["standard"]
    assert std.perfect_score == 1.0
    assert std.normalized > 90.0  # caught at the middle of the window, no FP
    assert nab.score_main(str(out), str(windows_file), str(data)) == 0
    printed = capsys.readouterr().out
    assert "standard" in printed and "reward_low_FN_rate" in printed


def test_cli_entry_points_report_bad_paths(tmp_path):
    assert nab.nab_main(str(tmp_path / "missing"), str(tmp_path / "out")) == 2
    assert nab.score_main(str(tmp_path / "missing"), str(tmp_path / "w.json"), None) == 2
