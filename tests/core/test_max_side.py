"""A model's max side: the coarse view it trained with, carried in its file and used by inference."""

import json
import shutil

import numpy as np
import onnx
import pytest

from waferseg_core.cli import main
from waferseg_core.coarse import constants, factor, view
from waferseg_core.errors import InvalidInputError
from waferseg_core.inference import DEFAULT_MODEL, Predictor
from waferseg_core.ml.data import synth_samples
from waferseg_core.ml.export import set_metadata
from waferseg_core.ml.train import config_from_options
from waferseg_core.synth import first_sized, generate_wafer


def test_factor_and_view_take_a_max_side():
    grid = np.ones((120, 100), np.uint8)
    assert factor(grid.shape) == 2 and factor(grid.shape, 128) == 1 and factor(grid.shape, 40) == 3
    small, k = view(grid, 40)
    assert k == 3 and small.shape == (40, 34)
    with constants(max_side=128):  # None: the module's value at the time of the call
        assert factor(grid.shape) == 1 and factor(grid.shape, 96) == 2


def test_a_model_sees_large_wafers_with_its_own_max_side(tmp_path):
    path = tmp_path / "m128.onnx"
    shutil.copy(DEFAULT_MODEL, path)
    set_metadata(path, {"max_side": "128"})
    own = Predictor(path, cache_size=1)
    assert own.max_side == 128 and Predictor(cache_size=1).max_side is None  # shipped: none
    w = first_sized(3, over=96, up_to=128, limit=400).wafer
    assert factor(w.grid.shape) == 2 and factor(w.grid.shape, 128) == 1
    (a,) = own.predict([w])
    (b,) = Predictor(cache_size=1, max_side=128).predict([w])  # the shipped model, told so
    (c,) = Predictor(cache_size=1).predict([w])  # in 2 x 2 blocks
    assert np.array_equal(a.mask, b.mask) and np.allclose(a.probability, b.probability)
    assert not np.array_equal(a.probability, c.probability)
    for bad in ("12", "wide"):
        set_metadata(path, {"max_side": bad})
        with pytest.raises(InvalidInputError, match=f"m128.onnx: metadata max_side .* {bad!r}"):
            Predictor(path)


def test_training_builds_every_sample_with_the_run_s_max_side():
    with pytest.raises(InvalidInputError, match="max_side .* must be 32 dies or more, found 10"):
        config_from_options({"max_side": 10})
    assert config_from_options({}).max_side == 96
    with constants(max_side=40):  # as `waferseg train --max-side 40` sets it, with 2 processes
        made = synth_samples(201, 5, workers=2)
    want = [factor(generate_wafer(5, i).wafer.shape, 40) for i in range(201)]
    assert [s.scale for s in made] == want and max(want) > 1


def test_train_exports_the_max_side_it_trained_with(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--synth", "30", "--out", str(out), "--arch", "resnet18-w0.25"]
    argv += ["--epochs", "1", "--batch-size", "8", "--epoch-size", "8", "--device", "cpu"]
    assert main([*argv, "--max-side", "40", "--no-quantize"]) == 0
    assert "parity" in json.loads(capsys.readouterr().out.splitlines()[-1])
    meta = {p.key: p.value for p in onnx.load(out / "model.onnx").metadata_props}
    assert meta["max_side"] == "40" and Predictor(out / "model.onnx").max_side == 40
    assert main([*argv, "--max-side", "8"]) == 2
    assert "max_side (--max-side) must be 32 dies or more, found 8" in capsys.readouterr().err
