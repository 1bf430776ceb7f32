"""The pattern decision (waferseg_core.decision): candidates, offsets, their parsing and tuning."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from waferseg_core.classes import WAFER_LABELS
from waferseg_core.decision import (
    OFFSETS_KEY,
    PATTERNS,
    Scored,
    choose_pattern,
    macro_f1,
    parse_offsets,
    tune_offsets,
)
from waferseg_core.errors import InvalidInputError
from waferseg_core.metrics import wafer_report

ROOT = Path(__file__).parents[2]


def test_the_head_chooses_among_the_masks_candidates_and_offsets_shift_it():
    probs = dict.fromkeys(PATTERNS, 0.01) | {"Center": 0.8, "Loc": 0.3, "Scratch": 0.99}
    dies = {"Center": 12, "Loc": 5, "Scratch": 1}  # one Scratch die is no candidate
    assert choose_pattern(dies, probs) == "Center"
    assert choose_pattern(dies, probs, {"Loc": 2.5}) == "Loc"  # logit(0.3) + 2.5 > logit(0.8)
    assert choose_pattern(dies, probs, {"Loc": 2.0}) == "Center"
    assert choose_pattern({"Scratch": 1}, probs, {"Scratch": 3.0}) == "none"
    tie = dict.fromkeys(PATTERNS, 0.5)
    assert choose_pattern({"Donut": 3, "Loc": 9}, tie) == "Loc"  # equal scores: more dies


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("not json", "found 'not json'"),
        ("[1, 2]", "found '[1, 2]'"),
        ('{"Centre": 1}', "found 'Centre'"),
        ('{"Loc": "big"}', "Loc offset, found 'big'"),
        ('{"Loc": NaN}', "Loc offset, found nan"),
        ('{"Loc": true}', "Loc offset, found True"),
        ('{"none": 1}', "found 'none'"),
    ],
)
def test_bad_offsets_are_refused_in_one_line(text, found):
    with pytest.raises(InvalidInputError) as err:
        parse_offsets(text, "m.onnx")
    msg = str(err.value)
    assert msg.startswith("m.onnx: expected") and found in msg and "\n" not in msg


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_offsets_text_parses_or_is_refused_cleanly(text):
    try:
        out = parse_offsets(text, "m.onnx")
    except InvalidInputError as err:
        assert "\n" not in str(err)
    else:
        assert set(out) <= set(PATTERNS) and all(np.isfinite(list(out.values())))


wafer = st.tuples(
    st.sampled_from(WAFER_LABELS),
    st.lists(st.integers(0, 6), min_size=8, max_size=8),
    st.lists(st.floats(1e-4, 1 - 1e-4), min_size=8, max_size=8),
)
offsets = st.dictionaries(st.sampled_from(PATTERNS), st.sampled_from([-3.0, -1.0, 0.5, 2.0]))


@settings(max_examples=100, deadline=None)
@given(st.lists(wafer, min_size=1, max_size=30), offsets)
# Found by hypothesis: logits 1e-12 apart, which a die-count bonus of 1e-9 used to outweigh.
@example(
    [
        (
            "Center",
            [0, 0, 0, 3, 0, 0, 0, 2],
            [0.5, 0.5, 0.5, 0.9998999999999999, 0.5, 0.5, 0.5, 0.9999],
        )
    ],
    {},
)
# An exact tie of scores goes to the candidate with more dies.
@example([("Loc", [0, 0, 0, 3, 0, 0, 0, 5], [0.5, 0.5, 0.5, 0.9, 0.5, 0.5, 0.5, 0.9])], {})
def test_the_vectorised_decision_and_macro_f1_match_the_per_wafer_ones(wafers, off):
    truths = [t for t, _, _ in wafers]
    dies = [dict(zip(PATTERNS, d, strict=True)) for _, d, _ in wafers]
    probs = [dict(zip(PATTERNS, p, strict=True)) for _, _, p in wafers]
    scored = Scored.of(truths, dies, probs)
    one_by_one = [choose_pattern(d, p, off) for d, p in zip(dies, probs, strict=True)]
    assert [WAFER_LABELS[i] for i in scored.decide(off)] == one_by_one
    want = wafer_report(truths, one_by_one)["macro_f1"]
    assert round(scored.macro_f1(off), 4) == want
    assert macro_f1(scored.truth, scored.decide(off)) == scored.macro_f1(off)


def test_tuning_corrects_a_head_that_favours_one_class_and_leaves_a_right_one_alone():
    rng = np.random.default_rng(0)
    truths, dies, probs = [], [], []
    for i in range(200):
        loc = i % 2 == 0  # every wafer shows Loc and Scratch dies; half are truly Loc
        truths.append("Loc" if loc else "Scratch")
        dies.append({"Loc": 6, "Scratch": 6})
        # The head always leans to Scratch, by less on the true Loc wafers.
        gap = rng.uniform(0.5, 1.4) if loc else rng.uniform(1.6, 2.5)
        probs.append(dict.fromkeys(PATTERNS, 0.01) | {"Scratch": 0.5, "Loc": 1 / (1 + np.exp(gap))})
    scored = Scored.of(truths, dies, probs)
    assert scored.macro_f1({}) < 0.5
    found, score = tune_offsets(scored)
    assert score == 1.0 and scored.macro_f1(found) == 1.0
    assert found["Loc"] - found.get("Scratch", 0.0) == pytest.approx(1.5)
    right = Scored.of(["Loc", "Scratch"], [{"Loc": 6}, {"Scratch": 6}], probs[:2])
    assert tune_offsets(right) == ({}, 1.0)


def test_the_predictor_decides_with_the_offsets_its_model_carries(tmp_path):
    from waferseg_core.inference import DEFAULT_MODEL, Predictor, decide_pattern
    from waferseg_core.ml.export import set_metadata
    from waferseg_core.synth import generate_wafer

    # The shipped model carries the offsets its calibration chose (docs/model/calibration.json).
    calibration = json.loads((ROOT / "docs" / "model" / "calibration.json").read_text())
    assert Predictor().offsets == calibration["shipped"]["offsets"] != {}
    path = tmp_path / "m.onnx"
    shutil.copy(DEFAULT_MODEL, path)
    set_metadata(path, {OFFSETS_KEY: "{}"})
    # Mixed-type wafers: their masks show several patterns whatever the model's errors.
    wafers = [generate_wafer(5, i, mixed=1.0).wafer for i in range(40)]
    plain = Predictor(path).predict(wafers)
    # The engine decides from its one count of the mask as decide_pattern does from the mask.
    for w, r in zip(wafers, plain, strict=True):
        probs = np.array([r.wafer_probs[n] for n in WAFER_LABELS], dtype=np.float32)
        assert decide_pattern(r.mask, w.grid, probs, {}) == (r.pattern, r.patterns)
    # A large offset for one class makes it the pattern wherever the mask offers it.
    offered = [n for r in plain for n, d in r.class_dies.items() if d >= 2 and n != r.pattern]
    target = max(set(offered), key=offered.count)
    set_metadata(path, {OFFSETS_KEY: json.dumps({target: 30.0})})
    pred = Predictor(path)
    assert pred.offsets == {target: 30.0}
    changed = 0
    for r, again in zip(plain, pred.predict(wafers), strict=True):
        shows = r.class_dies.get(target, 0) >= 2
        assert again.pattern == (target if shows else r.pattern)
        assert (again.mask == r.mask).all()  # the mask does not move, only the call
        changed += again.pattern != r.pattern
    assert changed >= 1
    set_metadata(path, {OFFSETS_KEY: '{"Loc": "x"}'})
    with pytest.raises(InvalidInputError, match="m.onnx: expected a finite number"):
        Predictor(path)
