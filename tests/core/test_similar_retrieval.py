"""The similar-wafer retrieval benchmark's arithmetic (bench/similar_retrieval.py)."""

import numpy as np
import pytest

from tests.bench_module import load
from waferseg_core.wafer import WaferMap

bench = load("similar_retrieval")


def test_precision_counts_neighbours_of_the_same_label_and_honours_exclusions():
    rng = np.random.default_rng(0)
    a = rng.normal([5, 0, 0], 0.1, size=(11, 3))  # two tight clusters, far apart
    b = rng.normal([0, 5, 0], 0.1, size=(11, 3))
    labels = ["A"] * 11 + ["B"] * 11
    got = bench.precision_at(np.vstack([a, b]), labels)
    assert got["p@1"] == got["p@5"] == got["p@10"] == 1.0
    assert got["per_label_p@5"] == {"A": 1.0, "B": 1.0}
    # Cluster a mixes two labels (6 A, 5 B): a query's 10 neighbours are the rest of a, of
    # which 5 (an A) or 4 (a B) share its label.
    mixed = bench.precision_at(np.vstack([a, b]), ["A", "B"] * 5 + ["A"] + ["C"] * 11)
    assert mixed["p@10"] == round((6 * 0.5 + 5 * 0.4 + 11) / 22, 3)
    assert mixed["per_label_p@5"]["C"] == 1.0
    # Leaving each query's own cluster out of its gallery: only the other cluster is left.
    own = np.zeros((22, 22), bool)
    own[:11, :11] = own[11:, 11:] = True
    assert bench.precision_at(np.vstack([a, b]), labels, exclude=own)["p@1"] == 0.0


def test_chance_is_the_share_of_other_wafers_with_the_same_label():
    assert bench.chance(["A", "A", "B", "B"]) == pytest.approx(round(4 / 12, 3))
    assert bench.chance(["A"] * 5) == 1.0


def test_fail_map_is_the_fail_share_per_cell():
    grid = np.ones((64, 64), np.uint8)
    grid[:32, :32] = 2  # the top-left quarter fails
    grid[60:, 60:] = 0
    m = bench.fail_map(WaferMap(grid=grid, lot="L", wafer_id="1")).reshape(32, 32)
    assert m[:16, :16].min() == 1.0 and m[16:, :].max() == 0.0 and m[:, 16:].max() == 0.0
