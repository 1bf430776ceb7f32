"""How fast training can go: batches one process builds, and optimizer steps a device takes.

A training run goes at the slower of the two (times the data workers for the first). Which one
it is decides what to change: more workers or cheaper augmentation when building is the limit,
a larger batch when each step's fixed cost on the device is. ``bench/train_throughput.py``
prints both.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import numpy as np
import torch

from waferseg_core.ml.data import Augment, Sample, batches
from waferseg_core.ml.model import create_model
from waferseg_core.ml.train import (
    TrainConfig,
    autocast,
    batch_arrays,
    make_optimizer,
    optimizer_step,
    supervised_loss,
)

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _plan(samples: Sequence[Sample], batch_size: int, seed: int) -> itertools.cycle[list[int]]:
    """The training loop's class-balanced, size-bucketed batches, drawn again and again."""
    rng = np.random.default_rng(seed)
    return itertools.cycle(list(batches(samples, batch_size, rng, balanced=True)))


def build_rate(samples: Sequence[Sample], batch_size: int, seconds: float, seed: int = 0) -> float:
    """Augmented training wafers per second that one process builds into batches."""
    aug = Augment(seed)
    plan = _plan(samples, batch_size, seed)
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < seconds:
        idx = next(plan)
        batch_arrays(samples, idx, aug)
        n += len(idx)
    return n / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_rate(
    samples: Sequence[Sample], cfg: TrainConfig, device: torch.device, steps: int, warm: int = 3
) -> dict[str, float]:
    """Training wafers per second over ``steps`` optimizer steps of ``cfg.batch_size``.

    The batches are built and moved to the device before the clock starts, and every input
    shape has had a step, so only the steady step counts: forward, loss, backward, clipping,
    the update, and the host read of each step's loss that the training loop makes.
    """
    model = create_model(cfg.arch, dropout=cfg.dropout).to(device).train()
    opt = make_optimizer(model, cfg)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    aug = Augment(cfg.seed)
    plan = _plan(samples, cfg.batch_size, cfg.seed)
    built: list[Batch] = []
    for _ in range(warm + steps):
        x, y, labels = batch_arrays(samples, next(plan), aug)
        built.append((x.to(device), y.to(device), labels.to(device)))

    def step(batch: Batch) -> None:
        x, y, labels = batch
        with autocast(device, use_amp):
            loss = supervised_loss(model, x, y, labels, cfg, None)
        float(loss.detach())
        optimizer_step(model, opt, scaler, loss, cfg.clip)

    # Warm up on every input shape the timed steps will meet as well: a shape's first step
    # loads and picks its kernels, which a long training run pays once, not per batch size.
    first_of_shape: dict[tuple[int, ...], Batch] = {}
    for batch in built:
        first_of_shape.setdefault(tuple(batch[0].shape), batch)
    for batch in [*built[:warm], *first_of_shape.values()]:
        step(batch)
    _sync(device)
    t0 = time.perf_counter()
    for batch in built[warm:]:
        step(batch)
    _sync(device)
    seconds = time.perf_counter() - t0
    wafers = sum(len(b[0]) for b in built[warm:])
    return {
        "batch_size": cfg.batch_size,
        "wafers_per_s": round(wafers / seconds, 1),
        "ms_per_step": round(1000 * seconds / steps, 2),
    }
