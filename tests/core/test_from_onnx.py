"""Starting training from an exported ONNX model (the shipped one has no torch checkpoint)."""

import numpy as np
import pytest
import torch

from tests.core.test_ml import TINY, small_samples
from waferseg_core.errors import InvalidInputError
from waferseg_core.inference import DEFAULT_FP32, DEFAULT_MODEL, Predictor
from waferseg_core.ml.export import export_onnx
from waferseg_core.ml.from_onnx import weights_from_onnx
from waferseg_core.ml.model import create_model
from waferseg_core.ml.train import TrainConfig, initial_weights, train
from waferseg_core.modelio import encode


@pytest.fixture(scope="module")
def samples():
    return small_samples(24)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model with batch norms far from their defaults, exported as training does."""
    torch.manual_seed(1)
    model = create_model(TINY, dropout=0.0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.3)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(model.eval(), path, metadata={"arch": TINY})
    return model, path


def _batch(samples, n=8):
    return torch.from_numpy(np.stack([encode(s.grid, (32, 32)) for s in samples[:n]]))


@pytest.mark.parametrize("centred", [False, True])
def test_the_onnx_weights_compute_what_onnx_runtime_does(exported, samples, centred):
    model, path = exported
    x = _batch(samples)
    net = create_model(TINY, dropout=0.0).eval()
    net.load_state_dict(weights_from_onnx(path, TINY, x if centred else None))
    want = Predictor(path).raw(x.numpy())
    with torch.no_grad():
        got = net(x)
        orig = model.eval()(x)
    for g, w, o in zip(got, want, orig, strict=True):
        assert np.abs(g.numpy() - w).max() < 1e-4
        assert torch.allclose(g, o, atol=1e-4)  # the weights of the model that was exported


def test_centred_norms_also_hold_in_train_mode_on_their_batch(exported, samples):
    _, path = exported
    x = _batch(samples)
    plain = create_model(TINY, dropout=0.0)
    plain.load_state_dict(weights_from_onnx(path, TINY))
    centred = create_model(TINY, dropout=0.0)
    centred.load_state_dict(weights_from_onnx(path, TINY, x))
    with torch.no_grad():
        want = centred.eval()(x)[0]
        got = centred.train()(x)[0]
        off = plain.train()(x)[0]
    assert torch.allclose(got, want, atol=1e-3)
    # Without centring, train mode's batch statistics rescale every channel.
    assert (off - want).abs().max() > 100 * (got - want).abs().max()


def test_the_shipped_model_loads_for_fine_tuning():
    x = torch.from_numpy(np.stack([encode(np.ones((40, 40), np.uint8), (64, 64))]))
    net = create_model("resnet18-w0.5").eval()
    net.load_state_dict(weights_from_onnx(DEFAULT_FP32, "resnet18-w0.5", x))
    with torch.no_grad():
        seg = net(x)[0].numpy()
    assert np.abs(seg - Predictor(DEFAULT_FP32).raw(x.numpy())[0]).max() < 1e-3
    # The int8 model the app runs cannot be trained on; the error names the fp32 one.
    with pytest.raises(InvalidInputError, match="found an int8-quantized one") as err:
        weights_from_onnx(DEFAULT_MODEL, "resnet18-w0.5")
    assert str(DEFAULT_FP32) in str(err.value) and "\n" not in str(err.value)


def test_a_run_starts_from_an_onnx_model(exported, samples, tmp_path):
    _, path = exported
    cfg = TrainConfig(arch=TINY, epochs=1, batch_size=8, device="cpu", epoch_size=16, lr=0.0)
    cfg = TrainConfig(**{**cfg.__dict__, "init": str(path), "dropout": 0.0})
    list(train(cfg, samples, [], tmp_path / "run"))
    after = torch.load(tmp_path / "run" / "best_model.pt", weights_only=True)["model"]
    start = weights_from_onnx(path, TINY)
    convs = [k for k in start if k.endswith(".weight") and start[k].dim() == 4]
    assert convs and all(torch.equal(start[k], after[k]) for k in convs)  # lr 0: unchanged


def test_another_architecture_or_a_foreign_model_is_refused(exported, tmp_path):
    _, path = exported
    with pytest.raises(InvalidInputError, match=f"--init model is a {TINY} model, expected"):
        weights_from_onnx(path, "resnet18-w0.5")
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "foreign.onnx"))
    with pytest.raises(InvalidInputError, match="with 'arch' metadata"):
        initial_weights(str(tmp_path / "foreign.onnx"), TINY, torch.device("cpu"))
