import numpy as np
import pytest

from waferseg_core.editing import (
    DeleteRegion,
    Document,
    add_polygon,
    brush_dies,
    cut_hole,
    erase,
    paint,
    regions_from_mask,
    ring,
    sector,
    set_class,
)
from waferseg_core.errors import GeometryError, InvalidInputError
from waferseg_core.synth import generate_wafer
from waferseg_core.wafer import WaferMap


@pytest.fixture
def doc():
    return Document(WaferMap(grid=np.ones((20, 20), np.uint8)))


def run(doc, edit):
    edit.apply(doc)
    return edit


def test_polygon_then_undo_redo(doc):
    seen = []
    doc.listeners.append(seen.append)
    e = run(doc, add_polygon(doc, 5, [(2, 2), (6, 2), (6, 6), (2, 6)]))
    m = doc.mask()
    assert m.sum() == 5 * 16 and (m[2:6, 2:6] == 5).all()
    e.revert(doc)
    assert not doc.mask().any()
    e.apply(doc)
    assert doc.mask().sum() == 80 and seen == [e.key] * 3


def test_self_intersecting_outline_is_repaired(doc):
    run(doc, add_polygon(doc, 1, [(0, 0), (4, 4), (4, 0), (0, 4)]))
    assert doc.mask().any()


def test_hole_and_its_undo(doc):
    a = run(doc, add_polygon(doc, 2, [(0, 0), (10, 0), (10, 10), (0, 10)]))
    h = run(doc, cut_hole(doc, a.key, [(3, 3), (7, 3), (7, 7), (3, 7)]))
    m = doc.mask()
    assert m.sum() == 2 * (100 - 16) and m[5, 5] == 0
    h.revert(doc)
    assert doc.mask()[5, 5] == 2
    with pytest.raises(GeometryError, match="whole region"):
        cut_hole(doc, a.key, [(-1, -1), (11, -1), (11, 11), (-1, 11)])


def test_brush_and_eraser(doc):
    dies = brush_dies(doc, (10.5, 10.5), 2)  # centred on die (10, 10)
    assert dies.sum() == 13  # die centres within 2 dies: the plus-shaped disc
    e = run(doc, paint(doc, 8, dies))
    more_dies = brush_dies(doc, (12.5, 10.5), 1)
    more = run(doc, paint(doc, 8, more_dies, key=e.key))
    assert (doc.mask() == 8).sum() == (dies | more_dies).sum() == 13 + 3
    rub = run(doc, erase(doc, e.key, brush_dies(doc, (10.5, 10.5), 0.5)))
    assert doc.mask()[10, 10] == 0 and doc.mask()[9, 10] == 8
    rub.revert(doc)
    more.revert(doc)
    assert (doc.mask() == 8).sum() == 13
    gone = run(doc, erase(doc, e.key, np.ones((20, 20), bool)))
    assert isinstance(gone, DeleteRegion) and not doc.regions
    gone.revert(doc)
    assert (doc.mask() == 8).sum() == 13
    assert erase(doc, e.key, np.zeros((20, 20), bool)) is None


def test_brush_stays_on_the_wafer():
    grid = np.ones((10, 10), np.uint8)
    grid[:, :5] = 0
    d = Document(WaferMap(grid=grid))
    assert not brush_dies(d, (4, 5), 3)[:, :5].any()


def test_ring_with_hole_and_sector(doc):
    run(doc, ring(doc, 2, (10, 10), 4, 8))
    m = doc.mask()
    assert m[10, 10] == 0 and m[10, 16] == 2 and m[10, 3] == 2 and m[0, 0] == 0
    doc2 = Document(doc.wafer)
    run(doc2, sector(doc2, 3, (10, 10), 0, 9, -45, 45))
    m2 = doc2.mask()
    assert m2[10, 16] == 3 and m2[10, 3] == 0 and m2[3, 10] == 0
    with pytest.raises(InvalidInputError, match="inner < outer"):
        ring(doc, 2, (10, 10), 5, 5)


def test_set_class_and_bad_class(doc):
    a = run(doc, add_polygon(doc, 1, [(0, 0), (3, 0), (3, 3)]))
    c = run(doc, set_class(doc, a.key, 7))
    assert set(np.unique(doc.mask())) == {0, 7}
    c.revert(doc)
    assert set(np.unique(doc.mask())) == {0, 1}
    with pytest.raises(InvalidInputError, match="1-8"):
        set_class(doc, a.key, 0)


def test_accept_prediction_makes_exact_regions():
    sw = generate_wafer(7, 3, mixed=0.5)
    d = Document(sw.wafer)
    for e in regions_from_mask(sw.mask):
        e.apply(d)
    assert np.array_equal(d.mask(), sw.mask)


def test_region_at_prefers_the_higher_priority_class(doc):
    run(doc, add_polygon(doc, 7, [(0, 0), (20, 0), (20, 20), (0, 20)]))  # Random everywhere
    s = run(doc, add_polygon(doc, 8, [(5, 5), (7, 5), (7, 7), (5, 7)]))  # a scratch on top
    assert doc.region_at(6, 6).key == s.key


def test_vertex_editing_and_moving(doc):
    from waferseg_core.editing import (
        delete_vertex,
        insert_vertex,
        move_region,
        move_vertex,
        nearest_vertex,
    )

    a = run(doc, add_polygon(doc, 5, [(2, 2), (8, 2), (8, 8), (2, 8)]))
    ref = nearest_vertex(doc, a.key, 8.1, 8.2)
    assert ref is not None and nearest_vertex(doc, a.key, 5, 5) is None
    run(doc, move_vertex(doc, a.key, ref, (12, 12)))
    assert doc.mask()[10, 10] == 5  # the outline now reaches further
    ins = run(doc, insert_vertex(doc, a.key, 5, 2.1))  # on the top edge
    assert len(doc.regions[a.key].geometry.exterior.coords) == 6
    ins.revert(doc)
    assert insert_vertex(doc, a.key, 5, 5) is None  # not near an edge
    run(doc, delete_vertex(doc, a.key, nearest_vertex(doc, a.key, 12, 12)))
    assert doc.mask()[10, 10] == 0
    before = doc.mask().copy()
    mv = run(doc, move_region(doc, a.key, 3, 0))
    assert np.array_equal(doc.mask()[:, 3:], before[:, :-3])
    mv.revert(doc)
    assert np.array_equal(doc.mask(), before)
    tri = run(doc, add_polygon(doc, 1, [(15, 15), (18, 15), (18, 18)]))
    with pytest.raises(GeometryError, match="at least 3 vertices"):
        delete_vertex(doc, tri.key, nearest_vertex(doc, tri.key, 18, 18))
