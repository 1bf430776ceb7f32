"""BALD scores by Monte-Carlo dropout (torch; run by ``waferseg al query`` or the worker)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from waferseg_core.coarse import view
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
    """Per-wafer BALD (mean mutual information over its dies) from ``passes`` dropout samples.

    Large wafers are scored at the die scale the model sees them (``coarse``), over their cells.
    """
    dev = pick_device(device)
    model, cfg = load_model(Path(checkpoint), str(dev))
    model.to(dev).eval()
    undo = enable_mc_dropout(model)
    torch.manual_seed(seed)
    out = [0.0] * len(wafers)
    grids = [view(w.grid, cfg.max_side)[0] for w in wafers]  # the views it trained on
    buckets: dict[tuple[int, int], list[int]] = {}
    for i, g in enumerate(grids):
        buckets.setdefault((padded_size(g.shape[0]), padded_size(g.shape[1])), []).append(i)
    try:
        for size, idx_all in buckets.items():
            for k in range(0, len(idx_all), batch_size):
                idx = idx_all[k : k + batch_size]
                x = torch.from_numpy(np.stack([encode(grids[i], size) for i in idx])).to(dev)
                probs = torch.stack([torch.softmax(model(x)[0].float(), 1) for _ in range(passes)])
                p = probs.cpu().numpy()  # (T, B, C, H, W)
                for j, i in enumerate(idx):
                    g = grids[i]
                    out[i] = bald_scores(p[:, j, :, : g.shape[0], : g.shape[1]], g > 0)
    finally:
        undo()
    return out
