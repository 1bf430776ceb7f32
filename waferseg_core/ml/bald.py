"""BALD scores by Monte-Carlo dropout (torch; run by ``waferseg al query`` or the worker)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from waferseg_core.ml.active import bald_scores
from waferseg_core.ml.model import enable_mc_dropout
from waferseg_core.ml.train import load_model, pick_device
from waferseg_core.modelio import encode, padded_size
from waferseg_core.wafer import WaferMap


@torch.no_grad()
def bald(
    checkpoint: str | Path,
    wafers: Sequence[WaferMap],
    *,
    passes: int = 10,
    device: str = "auto",
    batch_size: int = 32,
    seed: int = 0,
) -> list[float]:
    """Per-wafer BALD (mean mutual information over its dies) from ``passes`` dropout samples."""
    dev = pick_device(device)
    model, _ = load_model(Path(checkpoint), str(dev))
    model.to(dev).eval()
    undo = enable_mc_dropout(model)
    torch.manual_seed(seed)
    out = [0.0] * len(wafers)
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, w in enumerate(wafers):
        buckets.setdefault((padded_size(w.rows), padded_size(w.cols)), []).append(i)
    try:
        for size, idx_all in buckets.items():
            for k in range(0, len(idx_all), batch_size):
                idx = idx_all[k : k + batch_size]
                x = torch.from_numpy(np.stack([encode(wafers[i].grid, size) for i in idx])).to(dev)
                probs = torch.stack([torch.softmax(model(x)[0].float(), 1) for _ in range(passes)])
                p = probs.cpu().numpy()  # (T, B, C, H, W)
                for j, i in enumerate(idx):
                    w = wafers[i]
                    out[i] = bald_scores(p[:, j, :, : w.rows, : w.cols], w.grid > 0)
    finally:
        undo()
    return out
