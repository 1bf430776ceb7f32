"""``waferseg stack``: a stored lot's stacked map, against shares counted from the wafers."""

import csv
import json

import numpy as np

from waferseg_core.cli import main
from waferseg_core.inference import Predictor
from waferseg_core.store.service import Store
from waferseg_core.synth import generate_wafer


def _lot(url):
    """Lot S: five wafers on one die grid (the first's), with their own fails, and one odd."""
    base = generate_wafer(6, 0).wafer
    maps = []
    for i in range(5):
        other = generate_wafer(6, i + 1).wafer.grid
        grid = base.grid.copy()
        h, w = min(grid.shape[0], other.shape[0]), min(grid.shape[1], other.shape[1])
        # Another wafer's fails on the shared die grid: fails only where a die is.
        grid[:h, :w] = np.where((grid[:h, :w] > 0) & (other[:h, :w] == 2), 2, grid[:h, :w] > 0)
        maps.append(base.with_grid(grid))
        maps[-1].wafer_id = str(i)
    odd = generate_wafer(6, 40).wafer
    odd.wafer_id = "odd"
    store = Store(url)
    store.import_lot(store.login(), "S", [*maps, odd])
    store.close()
    return [m.grid for m in maps], odd


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(x) for x in out.splitlines()], err


def test_stack_counts_each_positions_fails_and_writes_them(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    grids, odd = _lot(url)
    assert all(g.shape != odd.shape for g in grids)
    code, (row,), _ = run(
        capsys, "--store", url, "stack", "--lot", "S", "--csv", str(tmp_path / "s.csv")
    )
    assert code == 0
    on = grids[0] > 0
    want = sum((g == 2).astype(float) for g in grids) / 5
    assert (row["show"], row["wafers"], row["left_out"]) == ("fails", 5, 1)
    assert (row["rows"], row["cols"]) == grids[0].shape
    assert row["peak_share"] == round(want[on].max(), 4)
    assert row["mean_share"] == round(want[on].mean(), 4)
    assert all(want[r, c] == want[on].max() for r, c in row["peak_dies"])
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert len(rows) == int(on.sum())  # one row per die position, none off the wafer
    for x in rows[:: max(1, len(rows) // 50)]:
        r, c = int(x["row"]), int(x["col"])
        assert int(x["wafers"]) == 5 and float(x["share"]) == round(want[r, c], 6)


def test_lots_stack_as_one(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    grids, _ = _lot(url)
    store = Store(url)
    user = store.login()
    more = [store.wafer(user, i) for i in (1, 2)]  # two of S's wafers again, as lot T
    for k, m in enumerate(more):
        m.wafer_id = f"t{k}"
    store.import_lot(user, "T", more)
    store.close()
    code, (row,), _ = run(capsys, "--store", url, "stack", "--lot", "S", "--lot", "T")
    on = grids[0] > 0
    want = (sum((g == 2).astype(float) for g in grids) + sum(m.grid == 2 for m in more)) / 7
    assert code == 0 and row["lots"] == ["S", "T"] and row["wafers"] == 7
    assert row["left_out"] == 1 and row["mean_share"] == round(want[on].mean(), 4)


def test_stack_of_a_class_uses_the_models_masks(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    grids, _ = _lot(url)
    store = Store(url)
    user = store.login()
    wafers = [store.wafer(user, i) for i in range(1, 6)]
    store.close()
    preds = Predictor().predict(wafers)  # the shipped model, which the store resolves to
    code, (row,), _ = run(capsys, "--store", url, "stack", "--lot", "S", "--class", "Loc")
    on = grids[0] > 0
    want = sum((p.mask == 5).astype(float) for p in preds) / 5
    assert code == 0 and row["show"] == "Loc" and row["peak_share"] == round(want[on].max(), 4)


def test_stack_refuses_bad_input_in_one_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    _lot(url)
    (tmp_path / "afile").write_text("x")
    cases = [
        (("--lot", "NOPE"), "expected a stored lot, found no lot 'NOPE'"),
        (("--lot", "S", "--class", "Lox"), "--class: expected one of Center, Donut"),
        (
            ("--lot", "S", "--csv", str(tmp_path / "afile" / "x.csv")),
            "--csv: expected a file in an existing folder",
        ),
    ]
    for args, message in cases:
        code, rows, err = run(capsys, "--store", url, "stack", *args)
        assert code == 2 and rows == [] and message in err and err.count("\n") == 1
