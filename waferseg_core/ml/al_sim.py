"""Active-learning and FixMatch simulation on synthetic wafers (the oracle reveals true masks).

A pool and a fixed test set of synthetic wafers; every strategy starts from the same random
seed set, then rounds of query -> "annotate" (the pool's true masks) -> retrain from scratch
(same seed, same schedule), scoring test mIoU each round. ``labels_to_95pct`` is the smallest
labelled share of the pool whose model reaches 95% of the full-pool model's mIoU (None: never
within the ladder). FixMatch: the smallest share with and without the unlabelled rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waferseg_core.ml.active import bald_scores, select, uncertainty_key
from waferseg_core.ml.data import Sample, bucket_of, synth_samples
from waferseg_core.ml.model import enable_mc_dropout
from waferseg_core.ml.train import TrainConfig, _batch, evaluate_samples, load_model, train

Log = Callable[[str], None]


@dataclass
class SimConfig:
    """Sizes and schedule of a simulation."""

    pool: int = 240
    test: int = 120
    seed: int = 11
    ladder: tuple[float, ...] = (0.05, 0.10, 0.15, 0.20, 0.30)
    strategies: tuple[str, ...] = (
        "random",
        "entropy",
        "margin",
        "variation",
        "bald",
        "coreset",
        "hybrid",
    )
    arch: str = "resnet18-w0.25"
    epochs: int = 8
    steps_per_epoch: int = 10
    batch_size: int = 16
    mc_passes: int = 5
    fixmatch_labels: float = 0.05
    threshold: float = 0.95
    device: str = "cpu"
    max_dies_across: int = 62  # small wafers only: a 64-die bucket keeps the CPU runs short
    extra: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def pool_scores(
    model: torch.nn.Module, samples: Sequence[Sample], passes: int, device: torch.device
) -> dict[str, np.ndarray]:
    """Per wafer: entropy, margin, variation, BALD (``passes`` > 0) uncertainty and embedding."""
    out: dict[str, list[Any]] = {
        k: [None] * len(samples) for k in ("entropy", "margin", "variation", "bald", "emb")
    }
    order: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        order.setdefault(bucket_of(s), []).append(i)
    for idx_all in order.values():
        for k in range(0, len(idx_all), 64):
            idx = idx_all[k : k + 64]
            x, _, _ = _batch(samples, idx, None, device)
            model.eval()
            seg, _, emb = model(x)
            p = torch.softmax(seg.float(), 1).cpu().numpy()
            mc = None
            if passes:
                undo = enable_mc_dropout(model)
                mc = np.stack(
                    [torch.softmax(model(x)[0].float(), 1).cpu().numpy() for _ in range(passes)]
                )
                undo()
            for j, i in enumerate(idx):
                g = samples[i].grid
                on = g > 0
                pj = p[j, :, : g.shape[0], : g.shape[1]]
                top2 = np.sort(pj, 0)[-2:]
                ent = -(pj * np.log(np.clip(pj, 1e-12, 1))).sum(0)
                out["entropy"][i] = float(ent[on].mean())
                out["margin"][i] = float(1 - (top2[1] - top2[0])[on].mean())
                out["variation"][i] = float(1 - top2[1][on].mean())
                out["bald"][i] = (
                    bald_scores(mc[:, j, :, : g.shape[0], : g.shape[1]], on)
                    if mc is not None
                    else 0.0
                )
                out["emb"][i] = emb[j].float().cpu().numpy()
    return {k: np.array(v) if k != "emb" else np.stack(v) for k, v in out.items()}


def _small(count: int, seed: int, limit: int) -> list[Sample]:
    """``count`` synthetic wafers at most ``limit`` dies across (generated in order, filtered)."""
    out: list[Sample] = []
    start = 0
    while len(out) < count:
        batch = synth_samples(2 * (count - len(out)) + 8, seed, start=start)
        start += len(batch)
        out += [s for s in batch if max(s.grid.shape) <= limit][: count - len(out)]
    return out


def _fit(
    cfg: SimConfig,
    labelled: Sequence[Sample],
    out: Path,
    unlabeled: Sequence[Sample] = (),
) -> torch.nn.Module:
    tc = TrainConfig(
        arch=cfg.arch,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        device=cfg.device,
        epoch_size=cfg.steps_per_epoch * cfg.batch_size,
        patience=cfg.epochs,
        fixmatch=bool(unlabeled),
        threshold=cfg.threshold,
        ramp_epochs=max(1, cfg.epochs // 2),
    )
    for _ in train(tc, labelled, [], out, resume=False, unlabeled=unlabeled):
        pass
    model, _ = load_model(out / "best_model.pt", cfg.device)
    return model


def _miou(model: torch.nn.Module, test: Sequence[Sample], device: torch.device) -> float:
    return float(evaluate_samples(model, test, device)["mean_iou"])


def simulate(cfg: SimConfig, work: Path, log: Log = lambda _: None) -> dict[str, Any]:
    """Run the simulation; returns the JSON-ready result (curves included)."""
    device = torch.device(cfg.device)
    t0 = time.perf_counter()
    pool = _small(cfg.pool, cfg.seed, cfg.max_dies_across)
    test = _small(cfg.test, cfg.seed + 7919, cfg.max_dies_across)
    full = _miou(_fit(cfg, pool, work / "full"), test, device)
    log(f"full pool ({cfg.pool} wafers): mIoU {full:.4f}")
    n0 = max(2, round(cfg.ladder[0] * cfg.pool))
    start = np.random.default_rng(cfg.seed).permutation(cfg.pool)[:n0].tolist()
    # Every strategy starts from the same random labelled set, so its model is trained once.
    first = _fit(cfg, [pool[i] for i in start], work / "start")
    first_score = _miou(first, test, device)
    curves: dict[str, list[list[float]]] = {}
    for strategy in cfg.strategies:
        chosen = list(start)
        curve = []
        for k in range(len(cfg.ladder)):
            if k == 0:
                model, score = first, first_score
            else:
                model = _fit(cfg, [pool[i] for i in chosen], work / f"{strategy}-{k}")
                score = _miou(model, test, device)
            curve.append([round(len(chosen) / cfg.pool, 4), round(score, 4)])
            log(f"{strategy}: {len(chosen)} labels -> mIoU {score:.4f}")
            if k + 1 == len(cfg.ladder):
                break
            want = round(cfg.ladder[k + 1] * cfg.pool) - len(chosen)
            rest = [i for i in range(cfg.pool) if i not in set(chosen)]
            passes = cfg.mc_passes if strategy == "bald" else 0
            scores = pool_scores(model, [pool[i] for i in rest], passes, device)
            lab_emb = pool_scores(model, [pool[i] for i in chosen], 0, device)["emb"]
            unc = scores[uncertainty_key(strategy)]
            picks = select(
                strategy,
                want,
                uncertainty=unc,
                embeddings=scores["emb"],
                labelled_embeddings=lab_emb,
                seed=cfg.seed + k,
            )
            chosen += [rest[p.index] for p in picks]
        curves[strategy] = curve
    result: dict[str, Any] = {
        "pool": cfg.pool,
        "test": cfg.test,
        "full_miou": round(full, 4),
        "strategies": {
            s: {"labels_to_95pct": _reach(c, 0.95 * full), "curve": c} for s, c in curves.items()
        },
    }
    n_fix = max(2, round(cfg.fixmatch_labels * cfg.pool))
    few = [pool[i] for i in start[:n_fix]]
    seeds = set(start[:n_fix])
    unlabelled = [
        Sample(s.grid, None, np.zeros_like(s.labels), s.lot)
        for i, s in enumerate(pool)
        if i not in seeds
    ]
    sup = _miou(_fit(cfg, few, work / "fix-sup"), test, device)
    fix = _miou(_fit(cfg, few, work / "fix-fm", unlabeled=unlabelled), test, device)
    log(f"fixmatch at {n_fix} labels: supervised {sup:.4f}, fixmatch {fix:.4f}")
    result["fixmatch"] = {
        "labels": round(n_fix / cfg.pool, 4),
        "supervised_miou": round(sup, 4),
        "fixmatch_miou": round(fix, 4),
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def _reach(curve: list[list[float]], target: float) -> float | None:
    for frac, score in curve:
        if score >= target:
            return frac
    return None
