"""The short-history proxy (app/nab_short.py): cut geometry, and its LOCO on a tiny corpus."""

from __future__ import annotations

from dataclasses import replace

from app import nab, nab_loco, nab_short
from tables.anomaly.detector import METRIC_DETECTOR
from tests.unit.test_nab_loco import corpus, label, ts


def synthetic(n: int, centres: list[int]) -> tuple[nab_loco.Corpus, dict[str, list[list[str]]]]:
    rel = "cat/long.csv"
    quiet = "none/flat.csv"
    stamps = [ts(i) for i in range(n)]
    loaded = nab_loco.Corpus(
        {rel: list(range(n)), quiet: list(range(n))},
        {rel: [float(i % 7) for i in range(n)], quiet: [1.0] * n},
        {rel: stamps, quiet: stamps},
    )
    windows = {rel: [[label(c - 100), label(c + 100)] for c in centres], quiet: []}
    return loaded, windows


def rows(stamps: list[str], window: list[str]) -> tuple[int, int]:
    at = {nab.parse_timestamp(s): i for i, s in enumerate(stamps)}
    return at[nab.parse_timestamp(window[0])], at[nab.parse_timestamp(window[1])]


def test_cuts_centre_each_window_and_relabel_it_as_nab_would():
    loaded, windows = synthetic(6000, [1000, 4000, 4600])
    cuts, cut_windows = nab_short.make_cuts(loaded, windows)
    # one cut per window (lengths and positions in turn), one from the middle of a quiet series
    assert list(cuts.values) == [
        "cat/long.csv@550+1500",  # centre 1,000 at 30 % of 1,500 rows
        "cat/long.csv@3400+2000",  # centre 4,000 at 30 % of 2,000 rows
        "cat/long.csv@3500+2500",  # centre 4,600 at 30 % of 2,500 would pass the end: moved
        "none/flat.csv@2250+1500",
    ]
    for key, stamps in cuts.timestamps.items():
        start, length = (int(x) for x in key.split("@")[1].split("+"))
        assert len(stamps) == len(cuts.values[key]) == len(cuts.ts_ms[key]) == length
        assert stamps[0] == ts(start)
    relabelled = {k: [rows(cuts.timestamps[k], w) for w in ws] for k, ws in cut_windows.items()}
    assert relabelled == {
        "cat/long.csv@550+1500": [(375, 525)],  # 10 % of the cut, centred on the same row
        "cat/long.csv@3400+2000": [(550, 650), (1150, 1250)],  # two windows share the 10 %
        "cat/long.csv@3500+2500": [(438, 562), (1038, 1162)],
        "none/flat.csv@2250+1500": [],
    }


def test_short_loco_scores_held_out_cuts(tmp_path, capsys, monkeypatch):
    data, wfile, windows = corpus(tmp_path)  # 900-row series: every cut is a whole series
    loaded = nab_loco.load_corpus(str(data))
    configs = [METRIC_DETECTOR, replace(METRIC_DETECTOR, refractory_rows=75)]
    full, short = nab_short.short_loco(loaded, windows, configs)
    assert [f.held_out for f in full[0].folds] == ["a", "b", "c", "quiet"]
    std = short[0]
    assert [c for c, *_ in std.folds] == ["a", "b", "c", "quiet"]
    for _, score, _, _ in std.folds[:3]:
        assert score is not None and score > 90.0  # the spike is caught in the held-out cut
    assert std.folds[3][1] is None and std.folds[3][3] == 0
    assert std.pooled > 90.0 and std.shipped_at_full > 90.0 and std.shipped_own > 90.0
    monkeypatch.setattr(nab_loco, "GRID_AXES", {"refractory_rows": (150,)})
    assert nab_loco.loco_main(str(data), str(wfile), cuts=True) == 0
    out = capsys.readouterr().out
    assert "LOCO mean" in out and "short-history proxy" in out and "+ cuts" in out


def test_cli_option(tmp_path, capsys, monkeypatch):
    from app import cli

    data, wfile, _ = corpus(tmp_path)
    monkeypatch.setattr(nab_loco, "GRID_AXES", {"refractory_rows": (150,)})
    args = cli.build_parser().parse_args(
        ["nab-score", "--loco", "--cuts", "--data", str(data), "--windows", str(wfile)]
    )
    assert cli.cmd_nab_score(args, None) == 0
    assert "short-history proxy" in capsys.readouterr().out
