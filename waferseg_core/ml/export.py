"""ONNX export with a parity check, and static int8 quantization kept only when it agrees.

Export uses the dynamo exporter with dynamic batch/height/width and the weights inside the file;
``onnx.checker`` validates it and ONNX Runtime must match torch on real inputs (max logit
difference and argmax agreement). Static QDQ int8 is calibrated on validation wafers and kept only
when its per-die argmax agrees with fp32 on at least ``MIN_AGREEMENT`` of validation dies.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from waferseg_core.inference import MAX_SIDE_KEY, model_files
from waferseg_core.ml.data import Sample, bucket_of
from waferseg_core.modelio import IN_CHANNELS, encode

MIN_AGREEMENT = 0.999
OUTPUT_NAMES = ["seg_logits", "wafer_logits", "embedding"]


def run_metadata(arch: str, max_side: int, **extra: str) -> dict[str, str]:
    """What a trained model's file carries of its run, ``extra`` entries included.

    Its arch, and the coarse views it trained on (inference shows it the same ones).
    """
    return {"arch": arch, "waferseg": "1", MAX_SIDE_KEY: str(max_side), **extra}


def export_onnx(
    model: nn.Module, path: Path, example_size: int = 64, metadata: dict[str, str] | None = None
) -> None:
    """Write ``model`` (eval mode, CPU) as ONNX with dynamic batch, height and width."""
    model = model.eval().cpu()
    x = torch.zeros(2, IN_CHANNELS, example_size, example_size)
    x[:, 0] = 1.0
    batch, h, w = (
        torch.export.Dim("batch", min=1, max=4096),
        torch.export.Dim.DYNAMIC,
        torch.export.Dim.DYNAMIC,
    )
    program = torch.onnx.export(
        model,
        (x,),
        dynamo=True,
        input_names=["dies"],
        output_names=OUTPUT_NAMES,
        dynamic_shapes={"x": {0: batch, 2: h, 3: w}},
        external_data=False,
        optimize=True,
    )
    assert program is not None
    program.save(str(path), external_data=False)
    set_metadata(path, metadata or {})


def set_metadata(path: Path, entries: dict[str, str]) -> None:
    """Set (add or replace) metadata entries of an ONNX file in place, then check the file.

    Written to a temporary file beside it first, so a failure leaves the old file whole.
    """
    import onnx

    proto = onnx.load(str(path))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    for key, value in [*kept, *entries.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    tmp = path.with_name(path.name + ".tmp")
    try:
        onnx.save(proto, str(tmp))
        onnx.checker.check_model(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the replace; left only by a failure


def _inputs(samples: Sequence[Sample], limit: int = 64) -> list[np.ndarray]:
    groups: dict[int, list[np.ndarray]] = {}
    for s in samples[:limit]:
        size = bucket_of(s)
        groups.setdefault(size, []).append(encode(s.grid, (size, size)))
    return [np.stack(v) for v in groups.values()]


def parity(model: nn.Module, onnx_path: Path, samples: Sequence[Sample]) -> dict[str, float]:
    """ONNX Runtime vs torch on the samples: max |logit diff| and per-die argmax agreement."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst, agree, total = 0.0, 0, 0
    model = model.eval().cpu()
    with torch.no_grad():
        for batch in _inputs(samples):
            ref = model(torch.from_numpy(batch))[0].numpy()
            got = sess.run(None, {sess.get_inputs()[0].name: batch})[0]
            worst = max(worst, float(np.abs(ref - got).max()))
            on = batch[:, 0] < 0.5
            agree += int(((ref.argmax(1) == got.argmax(1)) & on).sum())
            total += int(on.sum())
    return {"max_abs_diff": worst, "argmax_agreement": agree / max(total, 1)}


def agreement(fp32: Path, int8: Path, samples: Sequence[Sample]) -> float:
    """Per-die argmax agreement of two ONNX models on the samples' dies."""
    import onnxruntime as ort

    a = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    agree = total = 0
    for batch in _inputs(samples, limit=len(samples)):
        name = a.get_inputs()[0].name
        pa = a.run(None, {name: batch})[0].argmax(1)
        pb = b.run(None, {name: batch})[0].argmax(1)
        on = batch[:, 0] < 0.5
        agree += int(((pa == pb) & on).sum())
        total += int(on.sum())
    return agree / max(total, 1)


def fp32_nodes(model_path: Path) -> list[str]:
    """The nodes quantization leaves in fp32: the stem and the two output heads.

    The stem reads the one-hot input and the heads write the logits that the argmax and the
    wafer labels are taken from; quantizing any other single convolution costs far less
    agreement (measured on the shipped model: resources/models/MODEL_CARD.md).
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    first = {i.name for i in graph.input}
    outputs = set(OUTPUT_NAMES[:2])
    return [
        n.name
        for n in graph.node
        if (n.op_type == "Conv" and first & set(n.input)) or outputs & set(n.output)
    ]


def quantize_static(
    fp32: Path,
    out: Path,
    calib: Sequence[Sample],
    val: Sequence[Sample],
    min_agreement: float = MIN_AGREEMENT,
) -> dict[str, Any]:
    """Static QDQ int8; ``out`` is written only when agreement >= ``min_agreement``.

    Weights are per-channel int8 in 7 bits (``reduce_range``): CPUs without VNNI multiply
    uint8 by int8 in pairs that saturate a 16-bit sum at full range, so the same file would
    answer differently on different machines; at 7 bits the sum always fits.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items = iter([{"dies": b} for b in _inputs(calib, limit=len(calib))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as d:
        pre = Path(d) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        tmp = Path(d) / "int8.onnx"
        quantize_static(
            str(pre),
            str(tmp),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            nodes_to_exclude=fp32_nodes(pre),
        )
        agree = agreement(fp32, tmp, val)
        kept = agree >= min_agreement
        if kept:
            os.replace(tmp, out)
        else:  # an int8 file left by an earlier export must not pass for this one
            out.unlink(missing_ok=True)
    return {"int8_agreement": round(agree, 5), "int8_kept": kept, "min_agreement": min_agreement}


def export_run(
    model: nn.Module,
    out: Path,
    train_set: Sequence[Sample],
    val_set: Sequence[Sample],
    *,
    metadata: dict[str, str],
    quantize: bool,
) -> dict[str, Any]:
    """Write ``out/model.onnx`` (parity-checked) and, when asked and kept, ``model.int8.onnx``."""
    onnx_path = out / "model.onnx"
    export_onnx(model, onnx_path, metadata=metadata)
    report: dict[str, Any] = {"parity": parity(model, onnx_path, val_set or train_set)}
    if quantize:
        report["quantization"] = quantize_static(
            onnx_path,
            model_files(onnx_path)["int8"],
            train_set[:256],
            val_set or train_set[:256],
        )
    return report
