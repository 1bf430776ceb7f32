"""The review window with real widgets: table worst first, views, adjudication, saving."""

import numpy as np
import pytest

from app.review_view import MODES, ReviewWindow
from tests.core.reviewed_lot import make_reviewed_lot
from waferseg_core.classes import CLASSES
from waferseg_core.review import disagreement, majority_vote
from waferseg_core.store.review_ops import wafer_masks


@pytest.fixture
def lot(tmp_path):
    store, ids = make_reviewed_lot(f"sqlite:///{tmp_path / 's.sqlite'}")
    yield store, ids
    store.close()


def test_table_views_and_figures(qtbot, lot):
    store, ids = lot
    win = ReviewWindow(store, store.login("rev", "pw"), "L")
    qtbot.addWidget(win)
    assert [r["wafer_id"] for r in win.rows] == [ids[1], ids[0]]  # worst first
    assert win.table.item(0, 2).text() < win.table.item(1, 2).text() == "1.000"
    assert win.wafer_id == ids[1] and win.chosen() == ["ann", "bob"]
    for mode, views in zip(MODES, (2, 1, 1), strict=True):
        win.set_mode(mode)
        assert len(win.views) == views
    html = win.figures.toHtml()
    assert "Cohen kappa" in html and "Loc" in html and "Center" in html and "centre" in html
    win.set_annotators(["ann"])
    assert len(win.views) == 1 and "alone" in win.figures.toPlainText()


def test_adjudicate_majority_zone_and_click_then_save(qtbot, lot):
    store, ids = lot
    rev = store.login("rev", "pw")
    win = ReviewWindow(store, rev, "L")
    qtbot.addWidget(win)
    wm = wafer_masks(store, rev, ids[1])
    grid, ann, bob = wm.wafer.grid, wm.by_annotator["ann"], wm.by_annotator["bob"]
    vote = majority_vote([ann, bob], grid)
    assert np.array_equal(win.majority(), vote)
    assert win.save_button.isEnabled()
    # The status names the consensus's classes and their dies, in words.
    first = next(c for c in CLASSES[1:] if (vote == c.id).any())
    said = win.status.text()
    n = int((vote == first.id).sum())
    assert said.startswith(f"Consensus (majority vote): {first.name} {n} dies")
    assert "{" not in said and said.endswith("not saved yet")
    # Every disputed die from bob: the consensus becomes bob's mask.
    assert np.array_equal(win.take_zone("bob", "disputed dies"), bob)
    # Click a disputed die with "take from" = ann: that connected region goes back to ann's.
    r, c = map(int, np.argwhere(disagreement([ann, bob], grid) > 0)[0])
    win.take_from.setCurrentText("ann")
    got = win.take_region_at(r, c)
    assert got[r, c] == ann[r, c]
    assert win.take_region_at(0, 0) is None  # off-wafer / undisputed: nothing changes
    win.note.setText("edge checked")
    ids_saved = win.save_consensus()
    assert ids_saved and not win.save_button.isEnabled()
    after = wafer_masks(store, rev, ids[1])
    assert np.array_equal(after.consensus, got)
    assert store.reviews(rev, ids[1])[0]["note"] == "chosen per region: edge checked"
    assert win.table.item(0, 5).text() == "yes"


def test_viewer_cannot_save(qtbot, lot):
    store, _ = lot
    admin = store.login()
    viewer = store.add_user(admin, "vic", "viewer", "pw")
    win = ReviewWindow(store, viewer, "L")
    qtbot.addWidget(win)
    win.majority()
    assert not win.save_button.isEnabled()
