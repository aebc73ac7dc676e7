"""Leave-one-category-out evaluation (app/nab_loco.py) on a tiny synthetic corpus."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import datetime, timedelta

from app import nab, nab_loco
from tables.anomaly.detector import METRIC_DETECTOR

T0 = datetime(2014, 4, 1)
N = 900


def ts(i: int) -> str:
    return (T0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S")


def label(i: int) -> str:
    return (T0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S.%f")


def write(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(
            [["timestamp", "value"]] + [[ts(i), v] for i, v in enumerate(values)]
        )


def corpus(tmp_path):
    data = tmp_path / "data"
    windows: dict[str, list[list[str]]] = {}
    for c, cat in enumerate(("a", "b", "c")):
        values = [10.0 + ((i * 7 + c) % 13) * 0.3 for i in range(N)]
        values[700] = 80.0
        write(data / cat / "spike.csv", values)
        windows[f"{cat}/spike.csv"] = [[label(660), label(739)]]
    write(data / "quiet" / "flat.csv", [5.0 + (i % 5) * 0.1 for i in range(N)])
    windows["quiet/flat.csv"] = []
    wfile = tmp_path / "windows.json"
    wfile.write_text(json.dumps(windows))
    return data, wfile, windows


def test_total_at_matches_the_sweep():
    cost = nab.PROFILES["standard"]
    stamps = [ts(i) for i in range(100)]
    pts = nab.sweep_file(stamps, [0.0] * 100, [[label(40), label(49)]], "f", cost)
    scores = [0.0] * 100
    scores[45], scores[80] = 0.9, 0.8
    pts = [nab.SweepPoint(s, p.sweep_score, p.window) for p, s in zip(pts, scores, strict=True)]
    for row in nab.score_by_threshold(pts, cost):
        assert abs(nab_loco.total_at(pts, row.threshold, cost) - row.score) < 1e-9


def test_loco_holds_out_each_category(tmp_path):
    data, _wfile, windows = corpus(tmp_path)
    loaded = nab_loco.load_corpus(str(data))
    configs = [METRIC_DETECTOR, replace(METRIC_DETECTOR, refractory_rows=75)]
    results, outputs = nab_loco.loco(loaded, windows, configs)
    assert len(outputs) == 2 and set(outputs[0]) == set(windows)
    std = results[0]
    assert [f.held_out for f in std.folds] == ["a", "b", "c", "quiet"]
    for f in std.folds[:3]:
        assert f.score is not None and f.score > 90.0  # the spike is caught, held out
    quiet = std.folds[3]
    assert quiet.score is None and quiet.fp_rows == 0 and quiet.raw == 0.0
    assert abs(std.mean - sum(f.score for f in std.folds[:3]) / 3) < 1e-9
    assert std.all_score > 90.0 and std.pooled > 90.0
    text = nab_loco.format_loco(results, configs)
    assert "LOCO mean" in text and "reward_low_FN_rate" in text


def test_loco_main_prints_the_table(tmp_path, capsys, monkeypatch):
    data, wfile, _ = corpus(tmp_path)
    monkeypatch.setattr(nab_loco, "GRID_AXES", {"refractory_rows": (150,)})
    assert nab_loco.loco_main(str(data), str(wfile)) == 0
    assert "held-out" in capsys.readouterr().out
    assert nab_loco.loco_main(str(tmp_path / "none"), str(wfile)) == 2


def test_cli_option(tmp_path, capsys, monkeypatch):
    from app import cli

    data, wfile, _ = corpus(tmp_path)
    monkeypatch.setattr(nab_loco, "GRID_AXES", {"refractory_rows": (150,)})
    args = cli.build_parser().parse_args(
        ["nab-score", "--loco", "--data", str(data), "--windows", str(wfile)]
    )
    assert cli.cmd_nab_score(args, None) == 0
    assert "LOCO mean" in capsys.readouterr().out
    args = cli.build_parser().parse_args(["nab-score", "--windows", str(wfile)])
    assert cli.cmd_nab_score(args, None) == 2  # neither --results nor --loco
