"""Active-learning and FixMatch simulations: the oracle reveals what an annotator would give.

A pool and a fixed test set; every strategy starts from the same random seed set, then rounds
of query -> "annotate" -> retrain from scratch (same seed, same schedule), scoring the test set
each round; with ``semi`` every round also learns from the pool's unlabelled rest (FixMatch).
``labels_to_95pct`` is the smallest labelled share of the pool whose model reaches 95% of the
full-pool model's score (None: never within the ladder). FixMatch: the smallest share with and
without the unlabelled rest.

Two data settings: synthetic wafers whose true masks are revealed (scored by test mIoU), and
real WM-811K wafers whose wafer-level labels are revealed (``real_data``: lot-disjoint pool and
test set, a fixed synthetic set with masks always in training, scored by test macro-F1).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from waferseg_core.classes import WAFER_LABELS
from waferseg_core.ml.active import bald_scores, select, uncertainty_key
from waferseg_core.ml.data import Sample, bucket_of, synth_samples, unlabelled_sample
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
    fixmatch_labels: float = 0.05  # 0: no FixMatch comparison (two trainings fewer)
    threshold: float = 0.95
    teacher_ema: float = 0.0  # FixMatch's pseudo-labels from an averaged teacher (TrainConfig)
    lr: float = 2e-3
    init: str = ""  # every round fine-tunes from this checkpoint (see ``pretrain``)
    device: str = "cpu"
    max_dies_across: int = 62  # small wafers only: a 64-die bucket keeps the CPU runs short
    semi: bool = False  # every round also learns from the pool's unlabelled rest (FixMatch)
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
        small = [s for s in batch if s.scale == 1 and max(s.grid.shape) <= limit]
        out += small[: count - len(out)]
    return out


def label_mix(samples: Sequence[Sample]) -> dict[str, int]:
    """How many of ``samples`` carry each wafer pattern (their first label), most first.

    Uncertainty sampling can fill whole rounds with one confusing pattern; the mix shows it.
    """
    counts: dict[str, int] = {}
    for s in samples:
        name = WAFER_LABELS[s.primary]
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _unlabelled(pool: Sequence[Sample], labelled: Sequence[int]) -> list[Sample]:
    """The pool's wafers outside ``labelled``, as FixMatch sees them: die states only."""
    known = set(labelled)
    return [unlabelled_sample(s.grid, s.lot) for i, s in enumerate(pool) if i not in known]


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
        teacher_ema=cfg.teacher_ema,
        ramp_epochs=max(1, cfg.epochs // 2),
        lr=cfg.lr,
        init=cfg.init,
    )
    for _ in train(tc, labelled, [], out, resume=False, unlabeled=unlabeled):
        pass
    model, _ = load_model(out / "best_model.pt", cfg.device)
    return model


def pretrain(cfg: SimConfig, samples: Sequence[Sample], out: Path, epochs: int, steps: int) -> str:
    """Train once on ``samples`` (e.g. synthetic wafers) and return the checkpoint's path.

    Rounds that fine-tune from it (``SimConfig.init``) measure what the revealed labels add to
    a model that already knows the synthetic patterns, as when annotators correct the shipped
    model on their own wafers.
    """
    _fit(replace(cfg, epochs=epochs, steps_per_epoch=steps, init="", lr=2e-3), samples, out)
    return str(out / "best_model.pt")


def metric_key(metric: str) -> str:
    """A metric's name in result keys (``miou`` for ``mean_iou``: the original contract)."""
    return "miou" if metric == "mean_iou" else metric


@dataclass
class SimData:
    """What a simulation learns from and is scored on.

    Attributes:
        pool: Wafers the strategies pick from; picking reveals their mask or wafer label.
        test: Fixed test wafers.
        base: Wafers in every training set whatever was picked (e.g. synthetic with masks).
        metric: ``mean_iou`` (needs test masks) or ``macro_f1`` (wafer labels).
    """

    pool: list[Sample]
    test: list[Sample]
    base: list[Sample] = field(default_factory=list)
    metric: str = "mean_iou"

    @property
    def short(self) -> str:
        """The metric's name in the result's keys."""
        return metric_key(self.metric)


def synthetic_data(cfg: SimConfig) -> SimData:
    """A synthetic pool and test set of small wafers (masks revealed, scored by mIoU)."""
    return SimData(
        _small(cfg.pool, cfg.seed, cfg.max_dies_across),
        _small(cfg.test, cfg.seed + 7919, cfg.max_dies_across),
    )


def real_data(
    npz: str, cfg: SimConfig, *, folds: int = 2, test_fold: int = 1, base: int = 600
) -> SimData:
    """Real WM-811K wafers: the pool is every lot outside ``test_fold``, the test set its lots.

    Picking a pool wafer reveals its wafer-level label only (no real mask is ever drawn);
    ``base`` synthetic wafers with masks train in every round so the model still learns to
    segment. Scored by the test wafers' macro-F1 over the 9 wafer classes.
    """
    from waferseg_core.formats.wm811k import read_npz
    from waferseg_core.ml.data import labelled_samples, lot_fold

    maps = [m for m in read_npz(npz) if max(m.grid.shape) <= cfg.max_dies_across]
    real = labelled_samples(
        [m.grid for m in maps], [str(m.extra["label"]) for m in maps], [m.lot for m in maps]
    )
    pool = [s for s in real if lot_fold(s.lot, folds) != test_fold]
    test = [s for s in real if lot_fold(s.lot, folds) == test_fold]
    return SimData(pool, test, _small(base, cfg.seed + 104729, cfg.max_dies_across), "macro_f1")


def labelled_sets(
    n_pool: int, n_start: int, fixmatch_labels: float, seed: int
) -> tuple[list[int], list[int]]:
    """The shared start's pool indices and FixMatch's labelled ones.

    Both are heads of one random order of the pool, so the smaller is part of the larger and
    a FixMatch share equal to the first rung is exactly the start (whose model is reused).
    """
    order = np.random.default_rng(seed).permutation(n_pool).tolist()
    n_fix = min(n_pool, max(2, round(fixmatch_labels * n_pool)))
    return order[:n_start], order[:n_fix]


def _score(
    model: torch.nn.Module, test: Sequence[Sample], device: torch.device, metric: str
) -> float:
    return float(evaluate_samples(model, test, device)[metric])


def simulate(
    cfg: SimConfig,
    work: Path,
    log: Log = lambda _: None,
    data: SimData | None = None,
    progress: Callable[[dict[str, Any]], None] = lambda _: None,
) -> dict[str, Any]:
    """Run the simulation (synthetic unless ``data``); returns the JSON-ready result.

    ``progress`` gets the result so far after the full-pool model, after FixMatch's comparison
    and after each strategy, so a run cut short (a time limit on a lent GPU) still leaves what it
    measured.
    """
    device = torch.device(cfg.device)
    t0 = time.perf_counter()
    data = data or synthetic_data(cfg)
    pool, test, base, metric, short = data.pool, data.test, data.base, data.metric, data.short

    def fit(labelled: list[Sample], name: str, unlabeled: Sequence[Sample] = ()) -> float:
        return _score(_fit(cfg, base + labelled, work / name, unlabeled), test, device, metric)

    n_pool = len(pool)
    alone = None
    if cfg.init:  # the model every round fine-tunes, before any label of this pool
        alone = _score(load_model(Path(cfg.init), cfg.device)[0], test, device, metric)
        log(f"the starting model, no label of this pool: {short} {alone:.4f}")
    full = fit(pool, "full")
    log(f"full pool ({n_pool} wafers): {short} {full:.4f}")
    result: dict[str, Any] = {
        "pool": n_pool,
        "test": len(test),
        "metric": metric,
        f"full_{short}": round(full, 4),
        **({"pretrained_only": round(alone, 4)} if alone is not None else {}),
        "strategies": {},
        **({"semi_supervised": True} if cfg.semi else {}),
    }
    progress(result)
    n0 = max(2, round(cfg.ladder[0] * n_pool))
    start, fix_labelled = labelled_sets(n_pool, n0, cfg.fixmatch_labels, cfg.seed)

    def rest_of(chosen: list[int]) -> list[Sample]:
        return _unlabelled(pool, chosen) if cfg.semi else []

    # Every strategy starts from the same random labelled set, so its model is trained once.
    first = _fit(cfg, base + [pool[i] for i in start], work / "start", rest_of(start))
    first_score = _score(first, test, device, metric)
    if cfg.fixmatch_labels > 0 and not cfg.semi:  # semi: every round has the unlabelled rest
        # Before the strategies: two fits, where a run cut short by a time limit still gets it.
        n_fix = len(fix_labelled)
        few = [pool[i] for i in fix_labelled]
        # The whole shared start (5% both by default) is the start's model, not a refit.
        sup = first_score if fix_labelled == start else fit(few, "fix-sup")
        fix = fit(few, "fix-fm", unlabeled=_unlabelled(pool, fix_labelled))
        log(f"fixmatch at {n_fix} labels: supervised {sup:.4f}, fixmatch {fix:.4f}")
        result["fixmatch"] = {
            "labels": round(n_fix / n_pool, 4),
            f"supervised_{short}": round(sup, 4),
            f"fixmatch_{short}": round(fix, 4),
        }
        progress(result)
    for strategy in cfg.strategies:
        chosen = list(start)
        curve = []
        mix: list[dict[str, int]] = []  # what each rung's model learnt from, by true pattern
        for k in range(len(cfg.ladder)):
            if k == 0:
                model, score = first, first_score
            else:
                labelled = base + [pool[i] for i in chosen]
                model = _fit(cfg, labelled, work / f"{strategy}-{k}", rest_of(chosen))
                score = _score(model, test, device, metric)
            curve.append([round(len(chosen) / n_pool, 4), round(score, 4)])
            mix.append(label_mix([pool[i] for i in chosen]))
            top = next(iter(mix[-1]))  # label_mix lists the most common first
            log(
                f"{strategy}: {len(chosen)} labels -> {short} {score:.4f} "
                f"(most: {top} {mix[-1][top] / len(chosen):.0%})"
            )
            if k + 1 == len(cfg.ladder):
                break
            want = round(cfg.ladder[k + 1] * n_pool) - len(chosen)
            taken = set(chosen)
            rest = [i for i in range(n_pool) if i not in taken]
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
        result["strategies"][strategy] = {
            "labels_to_95pct": _reach(curve, 0.95 * full),
            "curve": curve,
            "labelled_mix": mix,
        }
        progress(result)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def combine(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Average simulations that differ only in their seed (pool, test set, start, training).

    One small-scale run is noisy (a strategy's curve can dip between rungs), so its
    ``labels_to_95pct`` may be luck. Here each strategy's curve is the mean over the runs,
    ``labels_to_95pct`` is read from that mean against 95% of the mean full-pool score, and the
    runs' own figures are kept beside it (``per_run``), as are FixMatch's.

    Raises:
        ValueError: The results do not share their metric, pool size, strategies and ladder.
    """
    if not results:
        raise ValueError("expected at least one simulation result to combine, found none")
    for r in results:
        if not all("curve" in v for v in r.get("strategies", {}).values()) or "pool" not in r:
            raise ValueError(
                "expected full simulation results (the JSON --out writes, with each strategy's "
                "curve), found one without"
            )
    first = results[0]
    short = metric_key(first.get("metric", "mean_iou"))

    def shape(r: dict[str, Any]) -> tuple[Any, ...]:
        ladders = {k: [p[0] for p in v["curve"]] for k, v in r["strategies"].items()}
        # Rounds with FixMatch (--semi) and without are different experiments: never averaged.
        semi = bool(r.get("semi_supervised"))
        return r.get("metric", "mean_iou"), r["pool"], semi, json.dumps(ladders, sort_keys=True)

    for r in results[1:]:
        if shape(r) != shape(first):
            raise ValueError(
                "expected results of the same metric, pool, FixMatch rounds, strategies and "
                f"ladder, found {shape(first)[:3]} and {shape(r)[:3]} (or different strategies "
                "or rungs)"
            )
    fulls = [float(r[f"full_{short}"]) for r in results]
    full = float(np.mean(fulls))
    strategies: dict[str, Any] = {}
    for name, entry in first["strategies"].items():
        ys = np.array([[p[1] for p in r["strategies"][name]["curve"]] for r in results])
        curve = [
            [p[0], round(float(y), 4)] for p, y in zip(entry["curve"], ys.mean(0), strict=True)
        ]
        strategies[name] = {
            "labels_to_95pct": _reach(curve, 0.95 * full),
            "curve": curve,
            "sd": [round(float(v), 4) for v in ys.std(0)],
            "per_run": [r["strategies"][name]["labels_to_95pct"] for r in results],
        }
    out: dict[str, Any] = {
        "runs": len(results),
        "pool": first["pool"],
        "metric": first.get("metric", "mean_iou"),
        f"full_{short}": round(full, 4),
        f"full_{short}_per_run": fulls,
        "strategies": strategies,
        **({"semi_supervised": True} if first.get("semi_supervised") else {}),
    }
    fix = [r["fixmatch"] for r in results if "fixmatch" in r]
    if fix:
        sup = [float(f[f"supervised_{short}"]) for f in fix]
        fm = [float(f[f"fixmatch_{short}"]) for f in fix]
        out["fixmatch"] = {
            "labels": fix[0]["labels"],
            f"supervised_{short}": round(float(np.mean(sup)), 4),
            f"fixmatch_{short}": round(float(np.mean(fm)), 4),
            "per_run": [[a, b] for a, b in zip(sup, fm, strict=True)],
        }
    return out


def _reach(curve: list[list[float]], target: float) -> float | None:
    for frac, score in curve:
        if score >= target:
            return frac
    return None
