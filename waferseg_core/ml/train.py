"""The training loop: plain functions over a checkpoint dict (torchvision's reference style).

``train`` is a generator: it yields one progress dict per epoch (and honours a cancel callback),
so the CLI, the worker and the app's monitor can all drive it. Checkpoints hold tensors and plain
values only and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from waferseg_core.classes import WAFER_LABELS
from waferseg_core.coarse import LEAST_MAX_SIDE, MAX_SIDE
from waferseg_core.metrics import Confusion, segmentation_report, wafer_report
from waferseg_core.ml.data import Augment, FixMatchViews, Sample, batches, bucket_of, to_arrays
from waferseg_core.ml.losses import class_weights, combined_loss, mil_loss, wafer_loss
from waferseg_core.ml.model import NUM_CLASSES, create_model
from waferseg_core.modelio import IGNORE, encode, padded_size

WARMUP_WITH_INIT = 100  # default warm-up steps of a run that starts from --init weights


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run."""

    arch: str = "resnet18-w0.5"
    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # or "sgd"
    schedule: str = "cosine"  # or "plateau"
    amp: bool = True  # used on CUDA only
    clip: float = 1.0
    patience: int = 6  # early stopping, epochs without a better validation score
    seed: int = 0
    device: str = "auto"
    gamma: float = 2.0
    dice_weight: float = 1.0
    wafer_weight: float = 0.5
    mil_weight: float = 0.5
    weak_share: float = 0.3  # share of each epoch drawn from mask-less (real, labelled) wafers
    dropout: float = 0.1
    balanced: bool = True
    epoch_size: int = 0  # samples drawn per epoch (0: the training set's size)
    workers: int = 0  # DataLoader worker processes building batches
    # A wall-time budget (0: none). With it the cosine schedule follows the time spent rather
    # than the epoch count, so a run cut by the budget still ends with the learning rate
    # annealed to zero instead of stopping mid-schedule; the epoch in flight stops at the budget.
    max_seconds: float = 0.0
    fixmatch: bool = False  # learn from unlabelled wafers too (needs ``unlabeled`` in train())
    threshold: float = 0.95  # FixMatch: per-die confidence a pseudo-label needs
    unlabeled_weight: float = 1.0  # FixMatch: weight of the unlabelled loss once ramped up
    ramp_epochs: int = 5  # FixMatch: epochs over which that weight ramps up linearly
    # FixMatch: supervised-only epochs before pseudo-labels begin (-1: a third of ``epochs``).
    # Pseudo-labels of a model that has barely started are confidently wrong, and learning them
    # locked some runs into a worse model than supervised alone.
    fixmatch_start: int = -1
    # FixMatch: pseudo-labels from an exponential moving average of the weights with this decay
    # (0: from the model being trained, as in the FixMatch paper). An averaged teacher in eval
    # mode changes less from step to step than the student it labels for (Mean Teacher).
    teacher_ema: float = 0.0
    init: str = ""  # a checkpoint whose weights start the run (fine-tuning), same arch
    # Optimizer steps over which the learning rate rises linearly from 0 to its schedule's value
    # (a fresh run only, not a resumed one). AdamW's first steps move every weight by about the
    # rate whatever its gradient, which undoes a trained model before its moments settle.
    warmup_steps: int = 0
    # Wafers more than this many dies across are seen in blocks (waferseg_core/coarse.py); the
    # exported model carries it in its metadata, so inference shows it the same views.
    max_side: int = MAX_SIDE
    extra: dict[str, Any] = field(default_factory=dict)


def config_from_options(opts: Mapping[str, Any]) -> TrainConfig:
    """The config of ``waferseg train`` options: the CLI's or a worker job's (missing: defaults).

    Raises:
        InvalidInputError: ``threshold`` is outside (0, 1], ``teacher_ema`` outside [0, 1) or
            ``max_side`` under ``coarse.LEAST_MAX_SIDE``.
    """
    from waferseg_core.errors import InvalidInputError

    d = TrainConfig()
    cfg = TrainConfig(
        arch=str(opts.get("arch", d.arch)),
        epochs=int(opts.get("epochs", d.epochs)),
        batch_size=int(opts.get("batch_size", d.batch_size)),
        lr=float(opts.get("lr", d.lr)),
        seed=int(opts.get("seed", d.seed)),
        epoch_size=int(opts.get("epoch_size", d.epoch_size)),
        device=str(opts.get("device", d.device)),
        workers=int(opts.get("workers", d.workers)),
        max_seconds=float(opts.get("max_minutes", 0)) * 60,
        patience=int(opts.get("patience", d.patience)),
        fixmatch=bool(opts.get("fixmatch", d.fixmatch)),
        threshold=float(opts.get("threshold", d.threshold)),
        fixmatch_start=int(opts.get("fixmatch_start", d.fixmatch_start)),
        teacher_ema=float(opts.get("teacher_ema", d.teacher_ema)),
        init=str(opts.get("init") or ""),
        warmup_steps=_warmup(opts),
        max_side=int(opts.get("max_side") or d.max_side),
    )
    # Checked here, where the CLI and the worker meet, so a bad job fails before its data loads.
    if not 0.0 < cfg.threshold <= 1.0:
        raise InvalidInputError(
            f"threshold (--threshold) must be within (0, 1], found {cfg.threshold}"
        )
    if not 0.0 <= cfg.teacher_ema < 1.0:
        raise InvalidInputError(
            f"teacher_ema (--teacher-ema) must be within [0, 1), found {cfg.teacher_ema}"
        )
    if cfg.max_side < LEAST_MAX_SIDE:
        raise InvalidInputError(
            f"max_side (--max-side) must be {LEAST_MAX_SIDE} dies or more, found {cfg.max_side}"
        )
    return cfg


def _warmup(opts: Mapping[str, Any]) -> int:
    """Warm-up steps asked for, else ``WARMUP_WITH_INIT`` for a run from --init weights, else 0."""
    asked = opts.get("warmup_steps")
    if asked is not None:
        return int(asked)
    return WARMUP_WITH_INIT if opts.get("init") else 0


def pick_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def initial_weights(
    path: str, arch: str, device: torch.device, calibration: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """The weights to fine-tune from, checked against the run's architecture.

    ``path`` is a checkpoint (``.pt``) or an exported model (``.onnx``, e.g. the shipped one;
    its folded batch norms are centred on ``calibration``, see :mod:`.from_onnx`).

    Raises:
        InvalidInputError: The file is no checkpoint, or one of another architecture.
    """
    from waferseg_core.errors import InvalidInputError

    if path.lower().endswith(".onnx"):
        from waferseg_core.ml.from_onnx import weights_from_onnx

        cal = calibration.cpu() if calibration is not None else None
        return {k: v.to(device) for k, v in weights_from_onnx(path, arch, cal).items()}

    try:
        ck = torch.load(path, map_location=device, weights_only=True)
        found = str(json.loads(ck["config"]["json"])["arch"])
        weights: dict[str, torch.Tensor] = ck["model"]
    except Exception as exc:  # any unreadable file: one line naming what was expected
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not one"
        raise InvalidInputError(
            f"expected a waferseg checkpoint (.pt) to start from, found {path!r} ({why})"
        ) from None
    if found != arch:
        raise InvalidInputError(
            f"--init checkpoint is a {found} model, expected {arch} (the run's --arch)"
        )
    return weights


def budget_lr(base: float, spent: float, budget: float) -> float:
    """Cosine learning rate over a wall-time budget: ``base`` at 0 s down to 0 at ``budget``."""
    frac = min(1.0, max(0.0, spent / budget))
    return base * 0.5 * (1.0 + math.cos(math.pi * frac))


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batch_arrays(
    samples: Sequence[Sample], idx: list[int], aug: Augment | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, die targets and wafer labels of the samples ``idx``, padded to their bucket."""
    size = max(bucket_of(samples[i]) for i in idx)
    xs, ys = zip(*(to_arrays(samples[i], size, aug) for i in idx), strict=True)
    labels = np.stack([samples[i].labels for i in idx])
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)), torch.from_numpy(labels)


def _batch(
    samples: Sequence[Sample], idx: list[int], aug: Augment | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y, labels = batch_arrays(samples, idx, aug)
    return x.to(device), y.to(device), labels.to(device)


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """Mixed precision for a training step: bf16 on CUDA when enabled, full precision elsewhere."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return torch.autocast(device.type, dtype=dtype, enabled=enabled)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum, at the configured rate and weight decay."""
    params = model.parameters()
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True
    )


def supervised_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    weight: torch.Tensor | None,
) -> torch.Tensor:
    """A batch's labelled loss: per-die focal + Dice, wafer-label BCE, MIL on mask-less wafers."""
    seg, wafer, _ = model(x)
    loss = combined_loss(seg, y, dice_weight=cfg.dice_weight, gamma=cfg.gamma, weight=weight)
    loss = loss + cfg.wafer_weight * wafer_loss(wafer, labels)
    weak = ~(y != IGNORE).flatten(1).any(1)  # wafers with a label but no mask
    if weak.any() and cfg.mil_weight:
        on = (x[weak, 0] < 0.5).float()
        loss = loss + cfg.mil_weight * mil_loss(seg[weak], labels[weak], on)
    return loss


def optimizer_step(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss: torch.Tensor,
    clip: float,
) -> None:
    """Backward, gradient clipping and one optimizer step (through the AMP scaler)."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
    scaler.unscale_(opt)
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    scaler.step(opt)
    scaler.update()


class _Batches(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """A dataset whose items are whole batches, so DataLoader workers build them in parallel."""

    def __init__(self, samples: Sequence[Sample], plan: list[list[int]], seed: int) -> None:
        self.samples, self.plan, self.seed = samples, plan, seed
        self.aug: Augment | None = None

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.aug is None:  # one augmenter per worker process, seeded apart
            info = torch.utils.data.get_worker_info()
            self.aug = Augment(self.seed * 1000 + (info.id if info else 0))
        return batch_arrays(self.samples, self.plan[k], self.aug)


def fixmatch_loss(
    model: nn.Module,
    unlabeled: Sequence[Sample],
    idx: list[int],
    views: FixMatchViews,
    threshold: float,
    device: torch.device,
    weight: torch.Tensor | None = None,
    teacher: nn.Module | None = None,
) -> tuple[torch.Tensor, float]:
    """FixMatch's unlabelled loss on a batch, and the share of dies whose pseudo-label counted.

    Pseudo-labels come from the weak views without gradient (from ``teacher`` when given, else
    the model itself); the strong views learn them where it was at least ``threshold`` sure,
    with the supervised loss and class ``weight``: the confident dies are mostly background, and
    a plain cross-entropy over them taught a weak model to paint everything background.
    """
    weak = [views.weak(unlabeled[i].grid) for i in idx]
    size = max(padded_size(max(g.shape) + 2) for g in weak)
    xw = torch.from_numpy(np.stack([encode(g, (size, size)) for g in weak])).to(device)
    with torch.no_grad():
        labeller = model if teacher is None else teacher
        conf_t, lab_t = torch.softmax(labeller(xw)[0].float(), 1).max(1)
    conf, lab = conf_t.cpu().numpy(), lab_t.cpu().numpy().astype(np.uint8)
    xs, ys, on_total, kept_total = [], [], 0, 0
    for j, g in enumerate(weak):
        h, w = g.shape
        keep = (conf[j, :h, :w] >= threshold) & (g > 0)
        gs, ls, ks = views.strong(g, lab[j, :h, :w], keep)
        xs.append(encode(gs, (size, size)))
        y = np.full((size, size), IGNORE, np.uint8)
        y[: gs.shape[0], : gs.shape[1]] = np.where(ks, ls, IGNORE)
        ys.append(y)
        on_total += int((g > 0).sum())
        kept_total += int(ks.sum())
    kept = kept_total / max(on_total, 1)
    if not kept_total:
        return torch.zeros((), device=device), 0.0
    seg, _, _ = model(torch.from_numpy(np.stack(xs)).to(device))
    target = torch.from_numpy(np.stack(ys)).long().to(device)
    return combined_loss(seg, target, weight=weight), kept


def _teacher(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in eval mode (no dropout, running batch-norm statistics)."""
    import copy

    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def _follow(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """One step of the teacher's moving average; batch-norm statistics are copied as they are."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.lerp_(s.detach(), 1.0 - decay)
    for tb, sb in zip(teacher.buffers(), student.buffers(), strict=True):
        tb.copy_(sb)


@torch.no_grad()
def predict_samples(
    model: nn.Module, samples: Sequence[Sample], device: torch.device, batch_size: int = 64
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mask, wafer-label probabilities) per sample, with off-wafer dies set to background."""
    model.eval()
    out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(samples)  # type: ignore[list-item]
    order: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        order.setdefault(bucket_of(s), []).append(i)
    for idx_all in order.values():
        for k in range(0, len(idx_all), batch_size):
            idx = idx_all[k : k + batch_size]
            x, _, _ = _batch(samples, idx, None, device)
            seg, wafer, _ = model(x)
            pred = seg.argmax(1).cpu().numpy().astype(np.uint8)
            probs = torch.sigmoid(wafer.float()).cpu().numpy()
            for j, i in enumerate(idx):
                g = samples[i].grid
                m = pred[j, : g.shape[0], : g.shape[1]].copy()
                m[g == 0] = 0
                out[i] = (m, probs[j])
    return out


def evaluate_samples(
    model: nn.Module, samples: Sequence[Sample], device: torch.device
) -> dict[str, Any]:
    """Segmentation metrics on samples with masks, wafer metrics on all."""
    from waferseg_core.inference import decide_pattern

    preds = predict_samples(model, samples, device)
    conf = Confusion()
    truth, guess = [], []
    for s, (m, probs) in zip(samples, preds, strict=True):
        if s.mask is not None:
            conf.add(s.mask, m, s.grid > 0)
        truth.append(WAFER_LABELS[s.primary] if s.labels.sum() else "none")
        guess.append(decide_pattern(m, s.grid, probs)[0])
    report: dict[str, Any] = wafer_report(truth, guess)
    if conf.matrix.sum():
        report.update(segmentation_report(conf))
    return report


def _score(report: dict[str, Any]) -> float:
    """Validation score: mean IoU when there are masks, else wafer macro-F1."""
    value = report.get("mean_iou", report.get("macro_f1", 0.0))
    return float(value) if value == value else 0.0


def train(
    cfg: TrainConfig,
    train_set: Sequence[Sample],
    val_set: Sequence[Sample],
    out: Path,
    *,
    resume: bool = True,
    cancelled: Callable[[], bool] = lambda: False,
    unlabeled: Sequence[Sample] = (),
) -> Iterator[dict[str, Any]]:
    """Train, yielding a metrics dict per epoch; checkpoints and metrics.jsonl go to ``out``.

    With ``cfg.fixmatch`` every step also learns from a batch of ``unlabeled`` wafers (FixMatch).
    """
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    model = create_model(cfg.arch, dropout=cfg.dropout).to(device)
    opt = make_optimizer(model, cfg)
    sched: Any = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
        if cfg.schedule == "cosine"
        else torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "max", patience=2)
    )
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    counts = torch.zeros(NUM_CLASSES)
    for s in train_set:
        if s.mask is not None:
            counts += torch.bincount(
                torch.from_numpy(s.mask[s.grid > 0]).long(), minlength=NUM_CLASSES
            )
    weight = class_weights(counts).to(device)
    start, best, stale, spent_before = 0, -math.inf, 0, 0.0
    timed = cfg.max_seconds > 0 and cfg.schedule == "cosine"
    last_path, best_path, log_path = out / "last.pt", out / "best.pt", out / "metrics.jsonl"
    if resume and last_path.exists():
        ck = torch.load(last_path, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start, best, stale = int(ck["epoch"]) + 1, float(ck["best"]), int(ck["stale"])
        spent_before = float(ck.get("spent", 0.0))
    elif cfg.init:
        # An ONNX start centres its batch norms on the first training wafers (as they are).
        first = list(range(min(32, len(train_set))))
        cal = batch_arrays(train_set, first, None)[0] if first else None
        model.load_state_dict(initial_weights(cfg.init, cfg.arch, device, cal))
    warmup = cfg.warmup_steps if start == 0 else 0  # a resumed run has its moments already
    # The averaged teacher starts from the weights the run starts from (a resumed run's too:
    # the average itself is not checkpointed).
    teacher = _teacher(model) if cfg.fixmatch and cfg.teacher_ema > 0 else None
    step = 0
    rng = np.random.default_rng(cfg.seed + start)
    fm_start = cfg.fixmatch_start if cfg.fixmatch_start >= 0 else cfg.epochs // 3
    began = time.perf_counter()

    def spent() -> float:
        return spent_before + time.perf_counter() - began

    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        total = sup_total = n = 0.0
        u_total = kept_total = u_steps = 0.0
        use_fixmatch = cfg.fixmatch and len(unlabeled) > 0 and epoch >= fm_start
        views = FixMatchViews(cfg.seed * 1000 + epoch) if use_fixmatch else None
        ramped = (epoch - fm_start + 1) / max(1, cfg.ramp_epochs)
        u_weight = cfg.unlabeled_weight * min(1.0, ramped)
        plan = list(
            batches(
                train_set,
                cfg.batch_size,
                rng,
                balanced=cfg.balanced,
                epoch_size=cfg.epoch_size or None,
                weak_share=cfg.weak_share,
            )
        )
        loader = torch.utils.data.DataLoader(
            _Batches(train_set, plan, cfg.seed + epoch),
            batch_size=None,
            shuffle=False,
            num_workers=cfg.workers,
            persistent_workers=False,
            pin_memory=device.type == "cuda",
        )
        scheduled = [group["lr"] for group in opt.param_groups]  # this epoch's, untimed
        for x, y, labels in loader:
            if cancelled():
                return
            if timed:
                now = spent()
                if n and now >= cfg.max_seconds:
                    break  # the budget is spent: evaluate and keep what this epoch learned
                scheduled = [budget_lr(cfg.lr, now, cfg.max_seconds)] * len(scheduled)
            if timed or step <= warmup:
                ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
                for group, lr in zip(opt.param_groups, scheduled, strict=True):
                    group["lr"] = lr * ramp
            step += 1
            x, y, labels = (t.to(device, non_blocking=True) for t in (x, y, labels))
            with autocast(device, use_amp):
                loss = supervised_loss(model, x, y, labels, cfg, weight)
                sup_total += float(loss.detach()) * len(x)
                if views is not None:
                    pick = rng.choice(len(unlabeled), size=min(len(x), len(unlabeled)))
                    u_loss, kept = fixmatch_loss(
                        model,
                        unlabeled,
                        pick.tolist(),
                        views,
                        cfg.threshold,
                        device,
                        weight,
                        teacher,
                    )
                    loss = loss + u_weight * u_loss
                    u_total += float(u_loss.detach())
                    kept_total += kept
                    u_steps += 1
            optimizer_step(model, opt, scaler, loss, cfg.clip)
            if teacher is not None:
                _follow(teacher, model, cfg.teacher_ema)
            total += float(loss.detach()) * len(x)
            n += len(x)
        if not timed:  # the schedulers step from the epoch's own rate, not a warm-up fraction
            for group, lr in zip(opt.param_groups, scheduled, strict=True):
                group["lr"] = lr
        report = evaluate_samples(model, val_set, device) if val_set else {}
        # Without validation wafers the best epoch is the one with the lowest *supervised* loss:
        # FixMatch's unlabelled term grows as its weight ramps up, and counting it kept an
        # early epoch as "best" (in one simulation the 8th of 20, at a still high rate).
        score = _score(report) if val_set else -sup_total / max(n, 1)
        if cfg.schedule != "cosine":
            sched.step(score)
        elif not timed:  # a timed run sets the rate per step (budget_lr)
            sched.step()
        improved = score > best
        best, stale = (score, 0) if improved else (best, stale + 1)
        row = {
            "epoch": epoch,
            "loss": round(total / max(n, 1), 5),
            "supervised_loss": round(sup_total / max(n, 1), 5),
            "score": round(score, 4),
            "lr": opt.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - t0, 2),
            "wafers_per_s": round(n / max(time.perf_counter() - t0, 1e-9), 1),
            "device": device.type,
            "amp": use_amp,
            **(
                {
                    "unlabeled_loss": round(u_total / max(u_steps, 1), 5),
                    "pseudo_kept": round(kept_total / max(u_steps, 1), 4),
                    "unlabeled_weight": round(u_weight, 4),
                }
                if use_fixmatch
                else {}
            ),
            **{k: v for k, v in report.items() if k not in ("confusion", "labels")},
        }
        ck = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": epoch,
            "best": best,
            "stale": stale,
            "spent": spent(),
            "config": _plain(asdict(cfg)),
        }
        if improved:
            torch.save(ck, best_path)
            # The weights alone, small enough to ship or copy between machines.
            torch.save({"model": ck["model"], "config": ck["config"]}, out / "best_model.pt")
        torch.save(ck, last_path)
        with log_path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        yield row
        if stale >= cfg.patience:
            break
        if cfg.max_seconds and spent() >= cfg.max_seconds:
            break


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """Config as JSON text inside the checkpoint (weights_only loading accepts str)."""
    return {"json": json.dumps(d)}


def load_model(path: Path, device: str = "cpu") -> tuple[nn.Module, TrainConfig]:
    """A model and its config from a checkpoint (full or weights-only)."""
    ck = torch.load(path, map_location=device, weights_only=True)
    cfg = TrainConfig(**json.loads(ck["config"]["json"]))
    model = create_model(cfg.arch, dropout=cfg.dropout)
    model.load_state_dict(ck["model"])
    # load_state_dict copies into the new model's own (CPU) tensors: move it where asked.
    return model.to(device).eval(), cfg


def score_best(
    out: Path, cfg: TrainConfig, *sets: Sequence[Sample]
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """A finished run's best model (back on the CPU, ready to export) and its scores per set.

    Scored on the training device: on a GPU machine a CPU pass took longer than an epoch.
    An empty set scores ``{}``.
    """
    device = pick_device(cfg.device)
    model, _ = load_model(out / "best_model.pt", str(device))
    reports = [nan_to_none(evaluate_samples(model, s, device)) if s else {} for s in sets]
    return model.cpu(), reports


def nan_to_none(d: Any) -> Any:
    """JSON-safe copy (NaN -> None)."""
    if isinstance(d, dict):
        return {k: nan_to_none(v) for k, v in d.items()}
    if isinstance(d, list):
        return [nan_to_none(v) for v in d]
    if isinstance(d, float) and math.isnan(d):
        return None
    return d
