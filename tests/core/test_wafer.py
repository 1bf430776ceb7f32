import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from waferseg_core.errors import InvalidInputError
from waferseg_core.wafer import CoordFrame, WaferMap

FRAMES = [
    CoordFrame(notch, x0, y0, xs, ys)
    for notch, x0, y0, xs, ys in itertools.product(
        ["down", "left", "up", "right"], [0, -7], [0, 12], [1, -1], [1, -1]
    )
]


def test_counts_and_hash():
    grid = np.array([[0, 1, 2], [1, 2, 2]], np.uint8)
    m = WaferMap(grid=grid)
    assert (m.dies, m.pass_dies, m.fail_dies) == (5, 2, 3)
    assert m.content_hash == WaferMap(grid=grid.copy(), lot="other").content_hash
    assert m.content_hash != WaferMap(grid=grid.T.copy()).content_hash


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (np.zeros((0, 3), np.uint8), "non-empty 2-D"),
        (np.zeros(5, np.uint8), "non-empty 2-D"),
        (np.array([[0, 3]]), "found 3 at row 0 col 1"),
        (np.array([[0.5]]), "must hold integers"),
    ],
)
def test_bad_grids_are_rejected_with_what_was_found(grid, message):
    with pytest.raises(InvalidInputError, match=message):
        WaferMap(grid=grid)


def test_bins_must_match_grid():
    with pytest.raises(InvalidInputError, match="bin array shape"):
        WaferMap(grid=np.ones((2, 2), np.uint8), bins=np.ones((3, 2)))


def test_frame_rejects_bad_values():
    with pytest.raises(InvalidInputError, match="notch"):
        CoordFrame(notch="north")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="axis steps"):
        CoordFrame(x_step=2)


@pytest.mark.parametrize("frame", FRAMES)
def test_point_conversion_agrees_with_array_rotation(frame):
    # A raster where every die holds its own file coordinates, built from the frame's own
    # definition (x = x_origin + x_step * col, y = y_origin + y_step * row).
    h, w = 4, 6
    vr, vc = np.mgrid[0:h, 0:w]
    xs = frame.x_origin + frame.x_step * vc
    ys = frame.y_origin + frame.y_step * vr
    cx, cy = frame.raster_to_canonical(xs), frame.raster_to_canonical(ys)
    shape = cx.shape
    for r, c in np.ndindex(*shape):
        assert frame.canonical_to_file(r, c, shape) == (cx[r, c], cy[r, c])
        assert frame.file_to_canonical(int(cx[r, c]), int(cy[r, c]), shape) == (r, c)
    assert np.array_equal(frame.canonical_to_raster(cx), xs)


def test_notch_up_is_turned_half_round():
    raster = np.array([[1, 2], [0, 1]], np.uint8)
    frame = CoordFrame(notch="up")
    assert np.array_equal(frame.raster_to_canonical(raster), [[1, 0], [2, 1]])


@given(st.sampled_from(FRAMES), st.integers(1, 9), st.integers(1, 9), st.data())
def test_file_canonical_round_trip(frame, rows, cols, data):
    r = data.draw(st.integers(0, rows - 1))
    c = data.draw(st.integers(0, cols - 1))
    m = WaferMap(grid=np.ones((rows, cols), np.uint8), frame=frame)
    x, y = m.canonical_to_file(r, c)
    assert m.file_to_canonical(x, y) == (r, c)


def test_equality_compares_content():
    a = WaferMap(grid=np.ones((2, 2), np.uint8), lot="L", wafer_id="1")
    b = WaferMap(grid=np.ones((2, 2), np.uint8), lot="L", wafer_id="1")
    assert a == b
    assert a != WaferMap(grid=np.ones((2, 2), np.uint8), lot="L", wafer_id="2")
    assert a.raster().shape == (2, 2)
