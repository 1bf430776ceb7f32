"""The synthetic-target reference scores (bench/synth_ceiling.py): its masks and its size split."""

import json
import sys

import numpy as np

from tests.bench_module import load
from waferseg_core.inference import DEFAULT_MODEL

bench = load("synth_ceiling")


def test_grown_and_shrunk_move_an_outline_by_one_die():
    on = np.ones((7, 7), bool)
    mask = np.zeros((7, 7), np.uint8)
    mask[2:5, 2:5] = 5  # a 3 x 3 Loc
    assert (bench.grown(mask, on) == 5).sum() == 9 + 12  # plus its 4-neighbours
    inner = bench.shrunk(mask)
    assert (inner == 5).sum() == 1 and inner[3, 3] == 5


def test_size_classes_follow_the_larger_side():
    assert bench.size_class((40, 12)) == "up to 40"
    assert bench.size_class((30, 41)) == "41-60"
    assert bench.size_class((96, 96)) == "61-96"
    assert bench.size_class((97, 20)) == "over 96 (blocks)"


def test_by_size_scores_the_model_beside_the_one_die_errors(monkeypatch, capsys):
    argv = ["synth_ceiling.py", "--count", "30", "--seed", "21", "--model", str(DEFAULT_MODEL)]
    monkeypatch.setattr(sys, "argv", [*argv, "--phases", "2"])
    bench.main()
    out = json.loads(capsys.readouterr().out)
    rows = out["by_size"]
    assert list(rows) == [name for _, name in bench.SIZES]
    assert sum(r["wafers"] for r in rows.values()) == 30
    assert abs(sum(r["die_share"] for r in rows.values()) - 1.0) < 0.01
    for r in rows.values():
        if r["wafers"]:
            assert 0.0 < r["shrunk_1"] < r["grown_1"] <= 1.0 and 0.0 < r["model"] <= 1.0
    assert out["model"] == {"file": str(DEFAULT_MODEL), "phases": 2}
