"""Torch weights from an exported ONNX model, so that training can start from a shipped model.

The export folds each batch norm into the convolution before it (the convolution's weight is
scaled and a ``<conv>.weight_bias`` holds the folded shift), and the shipped model has no torch
checkpoint. Each such convolution takes the folded weight and its batch norm becomes an exact
identity-plus-shift in eval mode. In train mode a batch norm divides by the batch's own spread,
which would rescale every channel at the first step, so the norm is re-expressed around the
statistics of a calibration batch: running mean and variance are that batch's, the scale and
shift undo them. The network computes the same function in eval mode, and about the same in
train mode on batches like the calibration one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy.typing as npt
import torch
from torch import nn

from waferseg_core.errors import InvalidInputError
from waferseg_core.inference import model_files
from waferseg_core.ml.model import create_model


def _read(path: Path) -> tuple[str, dict[str, npt.NDArray[Any]]]:
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # any unreadable file: one line naming what was expected
        raise InvalidInputError(
            f"expected an ONNX model exported by waferseg, found {str(path)!r} "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    meta = {p.key: p.value for p in model.metadata_props}
    if "arch" not in meta:
        raise InvalidInputError(
            f"expected an ONNX model exported by waferseg (with 'arch' metadata), found {path}"
        )
    if any(n.op_type == "DequantizeLinear" for n in model.graph.node):
        # int8 weights cannot be trained on; the fp32 model they were made from can
        fp32 = model_files(path)["fp32"]
        raise InvalidInputError(
            f"expected an fp32 ONNX model, found an int8-quantized one at {path} "
            f"(start from the fp32 model it was made from, e.g. {fp32})"
        )
    return meta["arch"], {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _conv_norms(model: nn.Module) -> dict[str, str]:
    """Each convolution's name -> the batch norm registered right after it (its output's)."""
    pairs: dict[str, str] = {}
    last_conv = ""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            last_conv = name
        elif isinstance(module, nn.BatchNorm2d) and last_conv:
            pairs[last_conv] = name
            last_conv = ""
    return pairs


def weights_from_onnx(
    path: str | Path, arch: str, calibration: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """A state dict for ``create_model(arch)`` with the ONNX model's weights.

    Args:
        path: An ONNX file written by ``waferseg train`` (``arch`` in its metadata).
        arch: The run's architecture; the file's must be the same.
        calibration: Encoded wafers (N, C, H, W) whose statistics the batch norms are centred on;
            without it they are identity-plus-shift (exact in eval mode only).

    Raises:
        InvalidInputError: Not such a file, another architecture, or weights missing or misshapen.
    """
    found, arrays = _read(Path(path))
    if found != arch:
        raise InvalidInputError(
            f"--init model is a {found} model, expected {arch} (the run's --arch)"
        )
    model = create_model(arch).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    norms = _conv_norms(model)
    modules = dict(model.named_modules())
    for name, module in modules.items():
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        for part in ("weight", "bias"):
            if getattr(module, part, None) is None:
                continue
            key = f"{name}.{part}"
            if key not in arrays or tuple(arrays[key].shape) != tuple(state[key].shape):
                got = arrays[key].shape if key in arrays else "nothing"
                raise InvalidInputError(
                    f"{path}: expected {key} of shape {tuple(state[key].shape)}, found {got}"
                )
            state[key] = torch.from_numpy(arrays[key].copy())
        if name in norms:
            shift = arrays.get(f"{name}.weight_bias")
            if shift is None:
                raise InvalidInputError(f"{path}: expected {name}.weight_bias, found nothing")
            bn = norms[name]
            state[f"{bn}.weight"] = torch.ones_like(state[f"{bn}.weight"])
            state[f"{bn}.bias"] = torch.from_numpy(shift.copy())
            state[f"{bn}.running_mean"] = torch.zeros_like(state[f"{bn}.running_mean"])
            eps = float(modules[bn].eps)
            state[f"{bn}.running_var"] = torch.full_like(state[f"{bn}.running_var"], 1.0 - eps)
    if calibration is not None:
        _centre(model, state, norms, calibration)
    return state


def _centre(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    norms: dict[str, str],
    batch: torch.Tensor,
) -> None:
    """Re-express each batch norm around the statistics of its input on ``batch`` (in place)."""
    model.load_state_dict(state)
    modules = dict(model.named_modules())
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        modules[bn].register_forward_pre_hook(
            lambda _m, args, bn=bn: seen.__setitem__(bn, args[0].detach())
        )
        for bn in norms.values()
    ]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for h in hooks:
            h.remove()
    for bn, z in seen.items():
        eps = float(modules[bn].eps)
        mean = z.mean((0, 2, 3)).double()
        var = z.var((0, 2, 3), unbiased=False).double()
        shift = state[f"{bn}.bias"].double()
        # eval: weight * (z - mean) / sqrt(var + eps) + bias == z + shift, for every z.
        state[f"{bn}.running_mean"] = mean.float()
        state[f"{bn}.running_var"] = var.float()
        state[f"{bn}.weight"] = torch.sqrt(var + eps).float()
        state[f"{bn}.bias"] = (mean + shift).float()
