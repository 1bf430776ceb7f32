"""Test-time views: the flips and quarter turns, and predictions averaged over them."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from waferseg_core import views
from waferseg_core.errors import InvalidInputError
from waferseg_core.inference import Predictor
from waferseg_core.modelio import encode, padded_size
from waferseg_core.synth import first_sized, generate_wafer
from waferseg_core.wafer import WaferMap


@settings(max_examples=40, deadline=None)
@given(arrays(np.int16, st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9))))
def test_undo_inverts_every_view_on_the_last_two_axes(a):
    seen = set()
    for t in range(8):
        v = views.apply(a, t)
        assert v.shape[0] == a.shape[0]
        assert np.array_equal(views.undo(v, t), a)
        seen.add(v.tobytes() + bytes(v.shape))
    square = np.arange(9).reshape(3, 3)
    assert len({views.apply(square, t).tobytes() for t in range(8)}) == 8  # eight distinct views


def test_each_offered_prefix_is_a_group():
    x = np.arange(12).reshape(3, 4)  # no symmetry, so a view is known by its result
    for n in views.COUNTS:
        ts = views.ORDER[:n]
        got = {views.apply(x, t).tobytes() for t in ts}
        for a in ts:
            for b in ts:
                assert views.apply(views.apply(x, a), b).tobytes() in got


def test_a_count_not_offered_is_refused():
    with pytest.raises(
        InvalidInputError, match=r"expected a number of views in \[1, 2, 4, 8\], found 3"
    ):
        Predictor(views=3)


def _wafer(grid, name="1"):
    return WaferMap(grid=np.ascontiguousarray(grid), lot="L", wafer_id=name)


def test_two_views_average_the_plain_and_transposed_probabilities():
    sw = first_sized(11, up_to=64, limit=50)
    g = sw.wafer.grid
    plain = Predictor(cache_size=1)

    def probs(grid):
        size = (padded_size(grid.shape[0]), padded_size(grid.shape[1]))
        seg = plain.raw(encode(grid, size)[None])[0][0][:, : grid.shape[0], : grid.shape[1]]
        e = np.exp(seg - seg.max(0, keepdims=True))
        return e / e.sum(0, keepdims=True)

    mean = (probs(g) + probs(g.T).transpose(0, 2, 1)) / 2
    (got,) = Predictor(cache_size=1, views=2).predict([sw.wafer])
    on = g > 0
    want = mean.argmax(0)
    assert np.array_equal(got.mask[on], want[on])
    assert np.allclose(got.probability[on], mean.max(0)[on], atol=1e-5)
    (one,) = plain.predict([sw.wafer])
    assert np.array_equal(got.embedding, one.embedding)  # the plain view's


@pytest.mark.parametrize("t", [4, 2, 6])
def test_four_views_make_the_prediction_follow_the_wafer(t):
    # Averaged over a group of views, the prediction of a turned wafer is the turned prediction
    # (one view alone need not be).
    pred = Predictor(cache_size=8, views=4)
    for seed in range(3):
        # Small wafers: a large one's coarse view is not symmetric under the views.
        w = first_sized(12 + seed, up_to=96, limit=50).wafer
        (a,) = pred.predict([w])
        (b,) = pred.predict([_wafer(views.apply(w.grid, t), f"t{seed}")])
        on = views.apply(w.grid, t) > 0
        assert np.array_equal(views.apply(a.mask, t)[on], b.mask[on])
        assert a.pattern == b.pattern


def test_the_store_cache_takes_one_view_predictions_only(tmp_path):
    from waferseg_core.store.predict import predict_stored
    from waferseg_core.store.service import Store

    store = Store(f"sqlite:///{tmp_path / 's.sqlite'}")
    user = store.login()
    ids = store.import_lot(user, "L", [generate_wafer(3, i).wafer for i in range(2)])
    with pytest.raises(InvalidInputError, match="expected a predictor with views=1, found views=4"):
        next(predict_stored(store, user, Predictor(views=4), ids))
    with pytest.raises(InvalidInputError, match="with phases=1, found phases=2"):
        next(predict_stored(store, user, Predictor(phases=2), ids))
    with pytest.raises(
        InvalidInputError, match=r"expected its max side \(the default\), found max_side=128"
    ):
        next(predict_stored(store, user, Predictor(max_side=128), ids))
    (chunk,) = list(predict_stored(store, user, Predictor(), ids))
    assert [p.wafer_id for p in chunk] == ids
    store.close()
