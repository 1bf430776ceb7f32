"""The dashboard's figures and charts (real pyqtgraph widgets, offscreen)."""

import numpy as np

from app.dashboard import DashboardWindow
from tests.core.reviewed_lot import make_reviewed_lot
from waferseg_core.store.dashboard_data import dashboard
from waferseg_core.store.review_ops import wafer_masks


def test_figures_and_charts(qtbot, tmp_path, predictor):
    store, ids = make_reviewed_lot(f"sqlite:///{tmp_path / 's.sqlite'}")
    user = store.login()
    data = dashboard(store, user, predictor)
    (lot,) = data.lots
    assert lot.lot == "L" and lot.wafers == 4 and sum(lot.model.values()) == 4
    preds = predictor.predict([store.wafer(user, i) for i in ids])
    assert lot.model == {p: sum(x.pattern == p for x in preds) for p in {x.pattern for x in preds}}
    assert sum(lot.annotated.values()) == 3 and data.compared_wafers == 3
    # The confusion counts every on-wafer die of the three annotated wafers once.
    dies = sum(int((store.wafer(user, i).grid > 0).sum()) for i in ids[:3])
    assert data.confusion.sum() == dies
    loc_dies = sum(int((wafer_masks(store, user, i).final() == 5).sum()) for i in ids[:3])
    assert data.confusion[5].sum() == loc_dies

    win = DashboardWindow(store, user, predictor)
    qtbot.addWidget(win)
    win.show()
    assert win.lot_box.currentText() == "L" and "1 lots, 4 wafers" in win.summary.text()
    # Wafer counts get whole-number ticks (pyqtgraph's own would show 0.5, 1.5 ...).
    (major,) = win.charts["Patterns in lot"].getAxis("left")._tickLevels
    top = max([*lot.model.values(), *lot.annotated.values()])
    assert [label for _, label in major] == [str(v) for v in range(top + 1)]
    # The stacked map: the lot's four wafers have four grid shapes, so the first is stacked
    # alone: its fails are 100%, its passing dies 0%, off-wafer positions blank (NaN).
    win.tabs.setCurrentIndex(list(win.charts).index("Stacked map"))
    grid = store.wafer(user, ids[0]).grid
    want = np.where(grid == 0, np.nan, (grid == 2).astype(float))
    assert np.array_equal(win.stack_image, want, equal_nan=True)
    assert "3 of another die grid left out" in win.charts["Stacked map"].plotItem.titleLabel.text
    win.stack_box.setCurrentText("Loc")  # the model's Loc dies of that wafer
    loc = np.where(grid == 0, np.nan, (preds[0].mask == 5).astype(float))
    assert np.array_equal(win.stack_image, loc, equal_nan=True)
    for title in win.charts:
        win.tabs.setCurrentIndex(list(win.charts).index(title))
        out = win.save_png(title, tmp_path / f"{title}.png")
        assert out.stat().st_size > 1000
    store.close()
