"""Model, losses, training, checkpoints, ONNX export and the ONNX Runtime engine (tiny sizes)."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from waferseg_core.errors import InvalidInputError
from waferseg_core.inference import Predictor, decide_pattern
from waferseg_core.metrics import Confusion, outline_band, segmentation_report, wafer_report
from waferseg_core.ml.data import Augment, Sample, batches, bucket_of, synth_samples, to_arrays
from waferseg_core.ml.export import agreement, export_onnx, fp32_nodes, parity, quantize_static
from waferseg_core.ml.losses import class_weights, dice_loss, focal_loss, mil_loss
from waferseg_core.ml.model import create_model, enable_mc_dropout
from waferseg_core.ml.train import TrainConfig, budget_lr, initial_weights, load_model, train
from waferseg_core.modelio import IGNORE, encode, label_vector, padded_size
from waferseg_core.synth import first_sized

TINY = "resnet18-w0.25"


def small_samples(n, seed=3, max_cols=30):
    out, i = [], 0
    while len(out) < n:
        s = synth_samples(1, seed, 0.1, start=i)[0]
        i += 1
        if max(s.grid.shape) <= max_cols:
            out.append(s)
    return out


@pytest.fixture(scope="module")
def samples():
    return small_samples(48)


def test_forward_backward_and_shapes():
    model = create_model(TINY)
    x = torch.from_numpy(np.stack([encode(np.ones((20, 30), np.uint8), (32, 32))] * 2))
    seg, wafer, emb = model(x)
    assert seg.shape == (2, 9, 32, 32) and wafer.shape == (2, 9) and emb.shape[0] == 2
    (seg.mean() + wafer.mean()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["resnet34-w0.25", "resnet50-w0.25"])
def test_other_encoders_build(name):
    seg, _, _ = create_model(name)(torch.zeros(1, 4, 32, 64))
    assert seg.shape == (1, 9, 32, 64)


def test_registry_lists_valid_names_on_a_typo():
    with pytest.raises(InvalidInputError, match="expected one of resnet18, resnet34, resnet50"):
        create_model("resnet19")
    with pytest.raises(InvalidInputError, match="width must be a number"):
        create_model("resnet18-wx")


def test_mc_dropout_makes_passes_differ():
    model = create_model(TINY, dropout=0.5).eval()
    x = torch.from_numpy(encode(np.ones((16, 16), np.uint8))[None])
    with torch.no_grad():
        a = model(x)[0]
        undo = enable_mc_dropout(model)
        b, c = model(x)[0], model(x)[0]
        undo()
        d = model(x)[0]
    assert not torch.allclose(b, c) and torch.allclose(a, d)


def test_losses_on_hand_made_cases():
    target = torch.tensor([[[1, 1], [0, IGNORE]]])
    perfect = torch.full((1, 9, 2, 2), -20.0)
    perfect[0, 1, 0, :] = 20
    perfect[0, 0, 1, 0] = 20
    assert focal_loss(perfect, target).item() < 1e-6
    assert dice_loss(perfect, target).item() < 1e-3
    wrong = perfect.flip(1)
    assert focal_loss(wrong, target, gamma=0).item() > 10
    w = class_weights(torch.tensor([1000, 10, 10]))
    assert w[1] > w[0] and w.mean().item() == pytest.approx(1.0, rel=0.3)
    on = torch.ones(1, 2, 2)
    labels = torch.zeros(1, 9)
    labels[0, 0] = 1  # Center
    assert mil_loss(perfect, labels, on).item() < mil_loss(wrong, labels, on).item()


def test_metrics_by_hand():
    conf = Confusion()
    truth = np.array([[0, 1, 1], [8, 8, 0]])
    pred = np.array([[0, 1, 0], [8, 1, 0]])
    conf.add(truth, pred)
    iou = conf.iou()
    assert iou[1] == pytest.approx(1 / 3)  # tp 1, fp 1, fn 1
    assert iou[8] == pytest.approx(1 / 2)  # tp 1, fn 1
    assert np.isnan(iou[5])
    rep = segmentation_report(conf)
    assert rep["mean_iou"] == pytest.approx((1 / 3 + 1 / 2) / 2, abs=1e-4)
    assert rep["pixel_accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    w = wafer_report(["Center", "Center", "none", "Loc"], ["Center", "none", "none", "Loc"])
    assert w["wafer_accuracy"] == 0.75
    # F1: Center 2/3, none 2/3, Loc 1 -> macro 7/9
    assert w["macro_f1"] == pytest.approx(7 / 9, abs=1e-4)


def test_outline_band_straddles_class_boundaries_not_the_wafer_edge():
    mask = np.array([[0, 0, 0, 0], [0, 3, 3, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.uint8)
    on = np.ones_like(mask, bool)
    on[:, 3] = False  # off-wafer column: its edge with the wafer is no outline
    band = outline_band(mask, on, 1)
    expect = np.array([[0, 1, 1, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], bool)
    assert np.array_equal(band, expect)
    wider = outline_band(mask, on, 2)
    assert wider[3, 1] and wider[1, 0] and not wider[3, 3] and not outline_band(mask, on, 0).any()
    # A wafer of one class has no outline at all.
    assert not outline_band(np.zeros((5, 5), np.uint8), np.ones((5, 5), bool), 3).any()


def test_augment_keeps_mask_aligned_and_batches_bucket(samples):
    aug = Augment(1, rotate_p=0.0, dropout=0.0, noise=0.0)
    s = samples[0]
    g, m = aug(s.grid, s.mask)
    assert not m[g == 0].any()
    assert sorted(np.bincount(m.ravel(), minlength=9).tolist()) == sorted(
        np.bincount(s.mask.ravel(), minlength=9).tolist()
    )
    x, y = to_arrays(s, bucket_of(s), None)
    assert x.shape[1] == bucket_of(s) and (y[s.grid.shape[0] :, :] == IGNORE).all()
    for idx in batches(samples, 8, np.random.default_rng(0), balanced=True):
        assert len({bucket_of(samples[i]) for i in idx}) == 1


def test_weak_samples_get_their_share():
    strong = [Sample(np.ones((4, 4), np.uint8), np.zeros((4, 4), np.uint8), label_vector([]))] * 90
    weak = [Sample(np.ones((4, 4), np.uint8), None, label_vector(["Loc"]))] * 10
    drawn = [
        i
        for b in batches(
            strong + weak,
            10,
            np.random.default_rng(0),
            balanced=True,
            epoch_size=2000,
            weak_share=0.3,
        )
        for i in b
    ]
    assert 0.25 < np.mean([i >= 90 for i in drawn]) < 0.35


@pytest.mark.slow
def test_tiny_training_learns_and_resumes(tmp_path, samples):
    cfg = TrainConfig(
        arch=TINY,
        epochs=12,
        batch_size=8,
        lr=5e-3,
        seed=0,
        patience=99,
        device="cpu",
        epoch_size=96,
    )
    rows = list(train(cfg, samples[:40], samples[40:], tmp_path))
    assert len(rows) == 12  # (8 were enough on 32-die canvases; 64-die ones learn later)
    # It learns: the loss falls and the held-out mean IoU rises well above the first epoch's.
    assert rows[-1]["loss"] < 0.8 * rows[0]["loss"]
    assert max(r["mean_iou"] for r in rows[-3:]) > rows[0]["mean_iou"] + 0.1
    assert (tmp_path / "best_model.pt").exists()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == list(range(12))
    # Resume: two more epochs continue the numbering from last.pt.
    cfg.epochs = 14
    more = list(train(cfg, samples[:40], samples[40:], tmp_path))
    assert [r["epoch"] for r in more] == [12, 13]
    ck = torch.load(tmp_path / "last.pt", weights_only=True)
    assert int(ck["epoch"]) == 13
    _, back = load_model(tmp_path / "best_model.pt")
    assert back.arch == TINY


def test_cancel_stops_training(tmp_path, samples):
    cfg = TrainConfig(arch=TINY, epochs=3, batch_size=8, device="cpu")
    assert list(train(cfg, samples[:16], [], tmp_path, cancelled=lambda: True)) == []


def test_init_starts_from_a_checkpoint_and_refuses_a_mismatch(tmp_path, samples):
    base = TrainConfig(arch=TINY, epochs=1, batch_size=8, device="cpu", epoch_size=16)
    list(train(base, samples[:16], [], tmp_path / "a"))
    start = tmp_path / "a" / "best_model.pt"
    # A zero learning rate leaves the weights where they started: the checkpoint's, not random.
    tuned = TrainConfig(**{**base.__dict__, "lr": 0.0, "init": str(start), "seed": 7})
    list(train(tuned, samples[:16], [], tmp_path / "b"))
    before = torch.load(start, weights_only=True)["model"]
    after = torch.load(tmp_path / "b" / "best_model.pt", weights_only=True)["model"]
    weights = [k for k in before if k.endswith(".weight")]
    assert weights and all(torch.equal(before[k], after[k]) for k in weights)
    with pytest.raises(InvalidInputError, match="expected resnet18-w0.5"):
        other = TrainConfig(**{**base.__dict__, "arch": "resnet18-w0.5", "init": str(start)})
        list(train(other, samples[:16], [], tmp_path / "c"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match="expected a waferseg checkpoint"):
        list(
            train(
                TrainConfig(**{**base.__dict__, "init": str(junk)}),
                samples[:16],
                [],
                tmp_path / "d",
            )
        )


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        (".pt", "expected a waferseg checkpoint"),
        (".onnx", "expected an ONNX model exported by waferseg"),  # ml/from_onnx.py
    ],
)
# Garbage that starts like a pickle of an odd protocol makes torch warn before it fails.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=2000))
def test_init_from_garbage_is_a_one_line_error(tmp_path_factory, suffix, expected, data):
    junk = tmp_path_factory.mktemp("init") / f"junk{suffix}"
    junk.write_bytes(data)
    with pytest.raises(InvalidInputError) as err:
        initial_weights(str(junk), TINY, torch.device("cpu"))
    assert "\n" not in str(err.value) and expected in str(err.value)


def test_budget_lr_anneals_over_the_time_budget():
    assert budget_lr(2e-3, 0.0, 60.0) == pytest.approx(2e-3)
    assert budget_lr(2e-3, 30.0, 60.0) == pytest.approx(1e-3)
    assert budget_lr(2e-3, 60.0, 60.0) == pytest.approx(0.0)
    assert budget_lr(2e-3, 600.0, 60.0) == pytest.approx(0.0)  # past the budget: stays at 0


def test_time_budget_stops_mid_epoch_with_the_rate_annealed(tmp_path, samples):
    # One epoch would be 4,000 wafers (minutes here); a 5-second budget ends it early, and the
    # rate used last is annealed below the starting rate (test_budget_lr_... checks the curve).
    # (5 s, not less: on a busy machine the first steps, which start the data pipeline, take a
    # second or more.)
    cfg = TrainConfig(
        arch=TINY, epochs=50, batch_size=8, lr=5e-3, device="cpu", epoch_size=4000, max_seconds=5
    )
    rows = list(train(cfg, samples[:40], samples[40:], tmp_path))
    assert len(rows) == 1
    # The rate follows the clock (budget_lr of the time each step starts): below the start.
    # How far below depends on when the last step started, which a busy machine moves.
    assert rows[0]["lr"] < cfg.lr
    ck = torch.load(tmp_path / "last.pt", weights_only=True)
    assert 5.0 <= float(ck["spent"]) < 60.0
    # Resuming a spent budget trains at most one more step and stops.
    more = list(train(cfg, samples[:40], samples[40:], tmp_path))
    assert [r["epoch"] for r in more] == [1]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, samples):
    torch.manual_seed(0)
    model = create_model(TINY).eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(model, path, metadata={"arch": TINY})
    return model, path


def test_onnx_parity_and_dynamic_shapes(onnx_model, samples):
    model, path = onnx_model
    rep = parity(model, path, samples)
    assert rep["max_abs_diff"] < 1e-3 and rep["argmax_agreement"] > 0.999
    pred = Predictor(path)
    seg, wafer, _ = pred.raw(np.stack([encode(np.ones((40, 70), np.uint8))] * 3))
    assert seg.shape == (3, 9, 64, 96) and wafer.shape == (3, 9)


def test_int8_is_kept_only_when_it_agrees_and_keeps_stem_and_heads_fp32(
    onnx_model, samples, tmp_path
):
    import onnx

    _, path = onnx_model
    out = tmp_path / "tiny.int8.onnx"
    rep = quantize_static(path, out, samples[:32], samples[32:48], min_agreement=0.0)
    assert rep["int8_kept"] and rep["int8_agreement"] == round(
        agreement(path, out, samples[32:48]), 5
    )
    graph = onnx.load(str(out)).graph
    writers = {o: n for n in graph.node for o in n.output}
    kept = fp32_nodes(path)
    assert len(kept) == 3  # the stem, the per-die head and the wafer head
    convs = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    for n in convs:  # a quantized node reads its weight through DequantizeLinear
        dequantized = n.input[1] in writers and writers[n.input[1]].op_type == "DequantizeLinear"
        assert dequantized == (n.name not in kept), n.name
    assert {p.key: p.value for p in onnx.load(str(out)).metadata_props}["arch"] == TINY
    seg, wafer, emb = Predictor(out).raw(np.stack([encode(np.ones((40, 70), np.uint8))] * 2))
    assert seg.shape == (2, 9, 64, 96) and wafer.shape == (2, 9) and emb.shape[0] == 2
    # Not kept: nothing is written, and an int8 file of an earlier export is removed.
    rep = quantize_static(path, out, samples[:32], samples[32:48], min_agreement=1.01)
    assert not rep["int8_kept"] and not out.exists()


def test_predictor_outputs_cache_and_agreement(onnx_model, samples):
    from waferseg_core.synth import generate_wafer

    _, path = onnx_model
    pred = Predictor(path)
    wafers = [generate_wafer(3, i).wafer for i in range(5)]
    out = pred.predict(wafers)
    for w, r in zip(wafers, out, strict=True):
        assert r.mask.shape == w.shape and not r.mask[w.grid == 0].any()
        assert 0 <= r.confidence <= 1 and r.uncertainty >= 0
        assert (
            r.pattern == decide_pattern(r.mask, w.grid, np.array(list(r.wafer_probs.values())))[0]
        )
        assert r.model_hash == pred.hash
        # The call's probability is the head's for the pattern called (none included).
        assert r.pattern_probability == r.wafer_probs[r.pattern]
    again = pred.predict(wafers[:2])
    assert again[0] is out[0]  # served from the cache


def test_decide_pattern_follows_the_mask():
    grid = np.ones((10, 10), np.uint8)
    mask = np.zeros((10, 10), np.uint8)
    probs = np.zeros(9, np.float32)
    probs[2] = 0.9  # the head believes Edge-Loc, but the mask shows none of it
    assert decide_pattern(mask, grid, probs) == ("none", [])
    mask[0, :6] = 8
    mask[5, :3] = 1
    probs[0] = 0.7  # Center
    probs[7] = 0.2  # Scratch
    pattern, patterns = decide_pattern(mask, grid, probs)
    assert pattern == "Center" and set(patterns) == {"Center", "Scratch"}


def test_predictor_rejects_bad_model_files(tmp_path):
    with pytest.raises(InvalidInputError, match="no file"):
        Predictor(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InvalidInputError, match="expected an ONNX model"):
        Predictor(bad)


def test_warmup_ramps_the_rate_from_zero_and_leaves_the_schedule_alone(samples, tmp_path):
    from waferseg_core.ml.train import WARMUP_WITH_INIT, config_from_options

    assert config_from_options({}).warmup_steps == 0
    assert config_from_options({"init": "m.onnx"}).warmup_steps == WARMUP_WITH_INIT
    assert config_from_options({"init": "m.onnx", "warmup_steps": 0}).warmup_steps == 0
    cfg = TrainConfig(arch=TINY, epochs=2, batch_size=8, device="cpu", epoch_size=32, lr=1e-2)
    moved, rates = {}, {}
    for warm in (0, 10**9):  # 10**9: the rate never leaves the first steps of its ramp
        torch.manual_seed(0)
        start = {k: v.clone() for k, v in create_model(TINY).state_dict().items()}
        run = TrainConfig(**{**cfg.__dict__, "warmup_steps": warm, "dropout": 0.0})
        rows = list(train(run, samples[:40], samples[40:], tmp_path / str(warm)))
        rates[warm] = [r["lr"] for r in rows if "loss" in r]
        end = torch.load(tmp_path / str(warm) / "best_model.pt", weights_only=True)["model"]
        convs = [k for k in start if k.endswith(".weight") and start[k].dim() == 4]
        moved[warm] = max(float((end[k] - start[k]).abs().max()) for k in convs)
    assert moved[0] > 1e-3 and moved[10**9] < 1e-6  # AdamW moves a weight by about the rate
    assert rates[0] == rates[10**9] and len(rates[0]) == 2  # the cosine schedule is untouched


def test_small_wafers_are_seen_on_a_64_die_canvas():
    # On a 32-die canvas the encoder's deepest stage is 2x2 border cells: small wafers lost
    # their patterns (MODEL_CARD.md, "Small wafers"). Inference and training use one canvas.
    assert [padded_size(n) for n in (1, 30, 64, 65, 96, 97)] == [64, 64, 64, 96, 96, 128]
    w = first_sized(3, up_to=30).wafer
    pred = Predictor()
    (got,) = pred.predict([w])
    seg = pred.raw(encode(w.grid, (64, 64))[None])[0][0, :, : w.rows, : w.cols]
    on = w.grid > 0
    assert np.array_equal(got.mask[on], seg.argmax(0)[on])
    assert bucket_of(Sample(w.grid, np.zeros_like(w.grid), np.zeros(9, np.float32))) == 64
