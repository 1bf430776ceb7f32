"""Review through the store: annotators' masks, consensus with its reviewer, kept agreement."""

import json

import numpy as np
import pytest

from tests.core.reviewed_lot import make_reviewed_lot
from waferseg_core.cli import main
from waferseg_core.errors import InvalidInputError, PermissionDeniedError
from waferseg_core.review import connected_region, majority_vote, pick_regions
from waferseg_core.store import models as m
from waferseg_core.store.review_ops import lot_agreement, wafer_masks


def test_pick_regions_by_hand():
    grid = np.array([[1, 1], [1, 0]], np.uint8)
    a = np.array([[1, 1], [1, 1]], np.uint8)
    b = np.array([[5, 5], [5, 5]], np.uint8)
    left = np.array([[True, False], [True, False]])
    top = np.array([[True, True], [False, False]])
    out = pick_regions(a, {"a": a, "b": b}, [(left, "b"), (top, "a")], grid)
    # left column from b, then the top row back from a (later picks win); off-wafer die 0.
    assert out.tolist() == [[1, 1], [5, 0]]
    with pytest.raises(InvalidInputError, match="annotators a, b, found 'c'"):
        pick_regions(a, {"a": a, "b": b}, [(left, "c")], grid)


def test_consensus_agreement_and_provenance(store_url):
    store, ids = make_reviewed_lot(store_url)
    rev = store.login("rev", "pw")
    ann = store.login("ann", "pw")
    wm = wafer_masks(store, rev, ids[1])
    assert sorted(wm.by_annotator) == ["ann", "bob"] and wm.consensus is None
    assert wm.sources == {"ann": {"manual"}, "bob": {"manual"}}
    rows = lot_agreement(store, rev, "L", save=True)
    assert [r["wafer_id"] for r in rows] == [ids[1], ids[0]]  # worst first
    assert rows[0]["kappa"] < rows[1]["kappa"] == 1.0
    with store.sessions() as s:
        kept = s.query(m.AgreementMetric).filter_by(wafer_id=ids[1]).all()
        kinds = sorted({(k.metric, k.class_id) for k in kept})
    # kappa, and IoU + Dice for Center (1) and Loc (5)
    assert kinds == [("dice", 1), ("dice", 5), ("iou", 1), ("iou", 5), ("kappa", None)]

    admin = store.login() if store.is_sqlite else store.login("root", "pw")
    viewer = store.add_user(admin, "v", "viewer", "pw")
    final = majority_vote(list(wm.by_annotator.values()), wm.wafer.grid)
    with pytest.raises(PermissionDeniedError):
        store.save_consensus(viewer, ids[1], final, method="majority vote")
    first = store.save_consensus(rev, ids[1], final, method="majority vote", note="checked")
    again = store.save_consensus(rev, ids[1], final, method="majority vote")
    assert set(first).isdisjoint(again)  # the earlier consensus was replaced, not added to
    after = wafer_masks(store, ann, ids[1])
    assert np.array_equal(after.consensus, final) and sorted(after.by_annotator) == ["ann", "bob"]
    assert np.array_equal(after.final(), final)
    reviews = store.reviews(ann, ids[1])
    assert reviews[0]["reviewer"] == "rev" and reviews[-1]["note"] == "majority vote: checked"
    assert store.list_wafers(ann, lot="L")[1]["status"] == "reviewed"
    # The consensus is not a third annotator: agreement still compares ann and bob.
    again_rows = lot_agreement(store, ann, "L")
    assert again_rows[0]["annotators"] == ["ann", "bob"] and again_rows[0]["adjudicated"]
    store.close()


def test_review_adjudicate_cli(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    store, ids = make_reviewed_lot(url)
    store.close()
    assert main(["--store", url, "review", "adjudicate", "--lot", "L"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["wafer_id"] for x in lines] == ids[:2]
    assert main(["--store", url, "review", "adjudicate", "--lot", "L"]) == 0
    assert json.loads(capsys.readouterr().out) == {"lot": "L", "adjudicated": 0}
    assert main(["--store", url, "review", "adjudicate", "--lot", "nope"]) == 2
    assert "holds no wafers" in capsys.readouterr().err


def test_connected_region_is_four_connected():
    sel = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1]], bool)
    assert connected_region(sel, 0, 0).astype(int).tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    assert not connected_region(sel, 0, 2).any()  # not selected
    assert connected_region(sel, 2, 2).sum() == 1  # diagonal neighbours do not join


def test_replacing_keeps_the_other_annotators_and_the_consensus(tmp_path):
    store, ids = make_reviewed_lot(f"sqlite:///{tmp_path / 's.sqlite'}")
    bob, rev = (store.login(n, "pw") for n in ("bob", "rev"))
    wm = wafer_masks(store, rev, ids[1])
    store.save_consensus(rev, ids[1], wm.by_annotator["ann"], method="chosen per region")
    store.replace_annotations(bob, ids[1], wm.by_annotator["ann"], source="model")
    after = wafer_masks(store, rev, ids[1])
    assert np.array_equal(after.by_annotator["ann"], wm.by_annotator["ann"])  # ann's untouched
    assert np.array_equal(after.by_annotator["bob"], wm.by_annotator["ann"])  # bob's replaced
    assert after.consensus is not None and after.sources["bob"] == {"model"}
    store.close()
