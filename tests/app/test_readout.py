"""The die read-out: a KLARF die's defects by their class names, an inked die's bin meaning.

Expected words come from the AMAT file's own records, read by eye: defects 11 and 12 sit on die
(15, -35), both class 0, which its ClassLookup calls "Undefined", DSIZE 10.879276134 and
5.4676411073 µm.
"""

import numpy as np

from app.readout import bin_text, defects_by_die, defects_text
from tests.app.test_main_window import make
from waferseg_core import formats
from waferseg_core.formats.bins import ink
from waferseg_core.synth import generate_wafer
from waferseg_core.wafer import Defect

KLARF = "klarfkit__CPS3TwithoutReview.001"


def test_a_klarf_die_names_its_defects_in_the_status_bar(
    qtbot, demo_store, predictor, settings, klarf_dir
):
    store, user = demo_store
    store.import_lot(user, "HJU008", formats.read(klarf_dir / KLARF))
    win = make(qtbot, demo_store, predictor, settings)
    win.lot_box.setCurrentText("HJU008")
    assert win.select_wafer("25")
    w = win.wafer
    assert w.extra["class_lookup"][0] == "Undefined"  # the store keeps the file's lookup
    row, col = w.file_to_canonical(15, -35)
    win._show_die(row, col)
    text = win.statusBar().currentMessage()
    assert "file x=15 y=-35   fail" in text
    assert text.endswith("   2 defects: Undefined 10.8793 µm, Undefined 5.46764 µm")
    win._show_die(*w.file_to_canonical(0, 6))  # defect 5 alone on its die
    assert win.statusBar().currentMessage().endswith("   1 defect: Undefined 13.128 µm")


def test_many_defects_are_cut_short_and_unknown_classes_numbered():
    w = generate_wafer(1, 0).wafer
    w.defects = tuple(Defect(3, 4, 0.0, 0.0, float(s), 7) for s in (5, 0, np.nan, 2, 1))
    at = defects_by_die(w)
    assert list(at) == [(3, 4)] and len(at[(3, 4)]) == 5
    # No lookup: the class number; no size (0 or NA): none shown.
    assert defects_text(w, at[(3, 4)]) == "   5 defects: class 7 5 µm, class 7, class 7 +2 more"
    assert defects_text(w, []) == ""


def test_an_inked_die_reads_its_bins_meaning():
    sw = generate_wafer(1, 2)
    inked = ink(sw.wafer, sw.mask)
    r, c = np.argwhere((sw.mask > 0) & (sw.wafer.grid == 2))[0]
    name = ["Center", "Donut", "Edge-Loc", "Edge-Ring", "Loc", "Near-full", "Random", "Scratch"]
    want = f"   bin {20 + sw.mask[r, c]} {name[sw.mask[r, c] - 1]} (fail die)"
    assert bin_text(inked, r, c) == want
    assert bin_text(sw.wafer, r, c) == ""  # no bins
