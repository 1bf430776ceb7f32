"""Agreement figures against small cases worked out by hand."""

import numpy as np
import pytest

from waferseg_core.errors import InvalidInputError
from waferseg_core.review import (
    agreement_report,
    cohen_kappa,
    disagreement,
    fleiss_kappa,
    majority_vote,
    per_class,
    zone_agreement,
)

GRID = np.ones((2, 2), np.uint8)


def test_cohen_kappa_by_hand():
    # Dies: A = [1, 1, 0, 0], B = [1, 0, 0, 0]. po = 3/4; pA(1)=1/2, pB(1)=1/4 ->
    # pe = 1/2*1/4 + 1/2*3/4 = 1/2; kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2.
    a = np.array([[1, 1], [0, 0]], np.uint8)
    b = np.array([[1, 0], [0, 0]], np.uint8)
    assert cohen_kappa(a, b, GRID) == pytest.approx(0.5)
    assert cohen_kappa(a, a, GRID) == 1.0
    # Off-wafer dies do not count: only the first row is on the wafer -> A=[1,1], B=[1,0]:
    # po = 1/2, pe = 1*1/2 + 0 = 1/2 -> kappa 0.
    half = np.array([[1, 1], [0, 0]], np.uint8)
    assert cohen_kappa(a, b, half) == pytest.approx(0.0)


def test_fleiss_kappa_by_hand():
    # 4 dies, 3 raters, classes 0/1. Die votes (n0, n1): (3,0), (0,3), (2,1), (1,2).
    # P_i = (sum n^2 - 3) / 6: 1, 1, 1/3, 1/3 -> P_bar = 2/3. p0 = p1 = 6/12 -> Pe = 1/2.
    # kappa = (2/3 - 1/2) / (1/2) = 1/3.
    r1 = np.array([[0, 1], [0, 0]], np.uint8)
    r2 = np.array([[0, 1], [0, 1]], np.uint8)
    r3 = np.array([[0, 1], [1, 1]], np.uint8)
    assert fleiss_kappa([r1, r2, r3], GRID) == pytest.approx(1 / 3)


def test_per_class_iou_dice_and_disagreement():
    a = np.array([[1, 1], [8, 0]], np.uint8)
    b = np.array([[1, 0], [8, 8]], np.uint8)
    pc = per_class(a, b, GRID)
    assert pc["Center"] == {"iou": 0.5, "dice": pytest.approx(2 / 3, abs=1e-4)}
    assert pc["Scratch"] == {"iou": 0.5, "dice": pytest.approx(2 / 3, abs=1e-4)}
    assert disagreement([a, b], GRID).tolist() == [[0, 1], [0, 1]]


def test_majority_vote_and_ties():
    a = np.array([[1, 5], [0, 8]], np.uint8)
    b = np.array([[1, 8], [0, 0]], np.uint8)
    c = np.array([[2, 5], [0, 0]], np.uint8)
    assert majority_vote([a, b, c], GRID).tolist() == [[1, 5], [0, 0]]
    # A 1-1 tie between Loc (5) and Scratch (8): Scratch wins overlaps, so it wins the tie.
    assert majority_vote([a, b], GRID)[0, 1] == 8


def test_zones_and_report():
    grid = np.ones((9, 9), np.uint8)
    a = np.zeros((9, 9), np.uint8)
    b = a.copy()
    b[4, 4] = 1  # disagreement only at the centre
    z = zone_agreement([a, b], grid)
    assert z["centre"] < 1.0 and z["edge"] == 1.0 and z["upper_left"] == 1.0
    rep = agreement_report({"ann": a, "bob": b}, grid)
    assert (
        rep["kappa_kind"] == "cohen" and rep["disputed_dies"] == 1 and rep["pairs"][0]["a"] == "ann"
    )
    rep3 = agreement_report({"ann": a, "bob": b, "cy": a}, grid)
    assert rep3["kappa_kind"] == "fleiss" and len(rep3["pairs"]) == 3
    with pytest.raises(InvalidInputError, match="at least 2"):
        agreement_report({"ann": a}, grid)


def test_review_agreement_cli(tmp_path, capsys):
    import json

    from waferseg_core.cli import main
    from waferseg_core.store.service import Store
    from waferseg_core.synth import generate_wafer

    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    store = Store(url)
    admin = store.login()
    ann = store.add_user(admin, "ann", "annotator")
    bob = store.add_user(admin, "bob", "annotator")
    ids = store.import_lot(admin, "L", [generate_wafer(1, i).wafer for i in range(3)])
    square = {"type": "Polygon", "coordinates": [[[5, 5], [15, 5], [15, 15], [5, 15], [5, 5]]]}
    shifted = {"type": "Polygon", "coordinates": [[[8, 5], [18, 5], [18, 15], [8, 15], [8, 5]]]}
    store.save_annotation(ann, ids[0], 5, square)
    store.save_annotation(bob, ids[0], 5, square)  # wafer 1: full agreement
    store.save_annotation(ann, ids[1], 5, square)
    store.save_annotation(bob, ids[1], 1, shifted)  # wafer 2: disagreement
    store.save_annotation(ann, ids[2], 5, square)  # wafer 3: one annotator only
    store.close()
    assert main(["--store", url, "review", "agreement", "--lot", "L"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["wafer"] for x in lines] == [
        generate_wafer(1, 1).wafer.wafer_id,
        generate_wafer(1, 0).wafer.wafer_id,
    ]
    assert lines[0]["kappa"] < lines[1]["kappa"] == 1.0
    assert lines[0]["annotators"] == ["ann", "bob"] and "Loc" in lines[0]["pairs"][0]["per_class"]
    assert main(["--store", url, "review", "agreement", "--lot", "nope"]) == 2
