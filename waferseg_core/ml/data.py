"""Training data: synthetic wafers, COCO sets, and real wafers with wafer-level labels only.

Samples are (grid, mask or None, multi-hot labels). Augmentations suit die grids: the eight
90-degree rotations and flips and small rotations with nearest neighbour (albumentations, applied
to grid and mask together), die dropout and background noise; nothing changes colours because
there are none. Batches come from one padded-size bucket at a time, optionally class-balanced.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from waferseg_core import coarse
from waferseg_core.classes import WAFER_LABELS
from waferseg_core.coarse import coarsen_mask, constants, view
from waferseg_core.coco import load, mask_from_annotations
from waferseg_core.modelio import IGNORE, encode, label_vector, padded_size
from waferseg_core.patterns import patterns_from_mask
from waferseg_core.synth import generate_wafer

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@dataclass
class Sample:
    """One training wafer, as the model sees it.

    A wafer more than ``coarse.MAX_SIDE`` dies across is kept at the coarser die scale that
    inference shows the model (its mask too), so training and inference agree.
    """

    grid: npt.NDArray[np.uint8]
    mask: npt.NDArray[np.uint8] | None
    labels: npt.NDArray[np.float32]
    lot: str = ""
    scale: int = field(default=1, init=False)  # dies per cell side (1: the wafer as it is)

    def __post_init__(self) -> None:
        grid, self.scale = view(self.grid)
        if self.mask is not None:
            self.mask = coarsen_mask(self.mask, self.grid, self.scale)
        self.grid = grid

    @property
    def primary(self) -> int:
        """Index of the first wafer label set (the one balanced sampling counts)."""
        return int(np.argmax(self.labels))


def _synth_one(args: tuple[int, int, float, int]) -> Sample:
    seed, i, mixed, max_side = args
    sw = generate_wafer(seed, i, mixed=mixed)
    # Passed along, not inherited: a process pool's workers need not share the parent's module
    # state (coarse.constants() in the parent, as a run with another max side sets it).
    with constants(max_side=max_side):
        return Sample(
            sw.wafer.grid,
            sw.mask,
            label_vector(patterns_from_mask(sw.mask, sw.wafer.grid)),
            sw.wafer.lot,
        )


def synth_samples(
    count: int, seed: int, mixed: float = 0.15, workers: int = 0, start: int = 0
) -> list[Sample]:
    """``count`` synthetic wafers (in parallel processes when ``workers`` > 1)."""
    jobs = [(seed, i, mixed, coarse.MAX_SIDE) for i in range(start, start + count)]
    if workers > 1 and count > 200:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(_synth_one, jobs, chunksize=64))
    return [_synth_one(j) for j in jobs]


def coco_samples(path: str | Path) -> list[Sample]:
    """Every wafer of a COCO file with its mask."""
    out = []
    for cw in load(path):
        mask = mask_from_annotations(cw.annotations, cw.wafer)
        out.append(
            Sample(
                cw.wafer.grid,
                mask,
                label_vector(patterns_from_mask(mask, cw.wafer.grid)),
                cw.wafer.lot,
            )
        )
    return out


def store_samples(store: Any, actor: Any, lots: Sequence[str]) -> tuple[list[Sample], list[Sample]]:
    """(annotated, unannotated) wafers of stored lots; an annotated wafer's mask is its final one.

    A wafer marked annotated or reviewed without any region is a labelled clean wafer ("none").

    Raises:
        InvalidInputError: A lot holds no wafers.
    """
    from waferseg_core.errors import InvalidInputError
    from waferseg_core.store.review_ops import wafer_masks

    labelled: list[Sample] = []
    unlabelled: list[Sample] = []
    for lot in lots:
        rows = store.list_wafers(actor, lot=lot)
        if not rows:
            raise InvalidInputError(f"lot {lot!r} holds no wafers (or does not exist)")
        for r in rows:
            wm = wafer_masks(store, actor, r["id"])
            mask = wm.final()
            grid = wm.wafer.grid
            if mask is None and r["status"] in ("annotated", "reviewed"):
                mask = np.zeros(grid.shape, np.uint8)
            if mask is None:
                unlabelled.append(unlabelled_sample(grid, lot))
            else:
                labels = label_vector(patterns_from_mask(mask, grid))
                labelled.append(Sample(grid, mask, labels, lot))
    return labelled, unlabelled


def unlabelled_sample(grid: npt.NDArray[np.uint8], lot: str) -> Sample:
    """A wafer as FixMatch learns from it: die states, no mask, no wafer label."""
    return Sample(grid, None, np.zeros(len(WAFER_LABELS), np.float32), lot)


def unlabeled_samples(paths: Sequence[str | Path]) -> list[Sample]:
    """Every wafer of these files or folders, unlabelled (for FixMatch).

    Raises:
        InvalidInputError: Nothing readable was found.
    """
    from waferseg_core.errors import InvalidInputError
    from waferseg_core.formats import read_many

    got = read_many(paths)
    out = [unlabelled_sample(m.grid, lot) for lot, maps in got.lots.items() for m in maps]
    if not out:
        bad = f"; {len(got.errors)} unreadable, first: {got.errors[0]}" if got.errors else ""
        raise InvalidInputError(
            f"expected wafer files in {', '.join(map(str, paths))}, found none{bad}"
        )
    return out


def labelled_samples(
    grids: Sequence[npt.NDArray[np.uint8]], labels: Sequence[str], lots: Sequence[str]
) -> list[Sample]:
    """Real wafers with a wafer-level label and no mask (weak supervision)."""
    return [
        Sample(g, None, label_vector([] if lab == "none" else [lab]), lot)
        for g, lab, lot in zip(grids, labels, lots, strict=True)
    ]


def lot_fold(lot: str, folds: int) -> int:
    """Stable fold of a lot (lot-disjoint cross-validation)."""
    import zlib

    return zlib.crc32(lot.encode()) % folds


class Augment:
    """Grid/mask augmentations (training only)."""

    def __init__(
        self, seed: int, rotate_p: float = 0.3, dropout: float = 0.01, noise: float = 0.01
    ) -> None:
        import albumentations as A  # noqa: N812
        import cv2

        self.rng = np.random.default_rng(seed)
        self.geo = A.Compose(
            [
                A.D4(p=1.0),
                A.Rotate(
                    limit=12,
                    interpolation=cv2.INTER_NEAREST,
                    mask_interpolation=cv2.INTER_NEAREST,
                    border_mode=cv2.BORDER_CONSTANT,
                    fill=0,
                    fill_mask=0,
                    p=rotate_p,
                ),
            ],
            seed=int(seed),
        )
        self.dropout = dropout
        self.noise = noise

    def __call__(
        self, grid: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8] | None
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None]:
        """Augmented copies of a grid and its mask (None stays None)."""
        m = mask if mask is not None else np.zeros_like(grid)
        out = self.geo(image=grid, mask=m)
        g, m = out["image"].copy(), out["mask"].copy()
        on = g > 0
        if self.dropout:
            drop = on & (self.rng.random(g.shape) < self.rng.uniform(0, self.dropout))
            g[drop] = 0
            m[drop] = 0
        if self.noise:
            # Background noise: a few extra fail dies outside every pattern, and a few healed.
            flip = (g > 0) & (m == 0) & (self.rng.random(g.shape) < self.rng.uniform(0, self.noise))
            g[flip] = 3 - g[flip]
        if not (g > 0).any():  # never hand the model an empty wafer
            return grid, mask
        return g, (m if mask is not None else None)


class FixMatchViews:
    """FixMatch's two views of an unlabelled wafer.

    Weak: one of the eight flips/90-degree rotations. Strong, made from the weak view together
    with the pseudo-labels predicted on it (so labels and dies stay aligned): a grid or elastic
    distortion with nearest neighbour, die noise (a few dies' pass/fail flipped) and a cutout
    square whose dies all pass and lose their pseudo-labels. The wafer's outline stays: removing
    dies instead (an earlier version) cut holes that no real wafer has and moved the edge that
    Edge-Ring and Edge-Loc are defined by; FixMatch then scored no better than supervised alone.
    """

    def __init__(self, seed: int, dropout: float = 0.05, cutout: float = 0.25) -> None:
        import albumentations as A  # noqa: N812
        import cv2

        self.rng = np.random.default_rng(seed)
        self.dropout, self.cutout = dropout, cutout
        nearest = {
            "interpolation": cv2.INTER_NEAREST,
            "mask_interpolation": cv2.INTER_NEAREST,
            "border_mode": cv2.BORDER_CONSTANT,
        }
        self.warp = A.Compose(
            [
                A.OneOf(
                    [
                        A.GridDistortion(num_steps=5, distort_limit=0.25, **nearest, p=1.0),
                        A.ElasticTransform(alpha=8.0, sigma=4.0, **nearest, p=1.0),
                    ],
                    p=0.8,
                )
            ],
            seed=int(seed),
        )

    def weak(self, grid: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """A random flip/rotation of the grid."""
        g = np.rot90(grid, int(self.rng.integers(4)))
        return np.ascontiguousarray(g[:, ::-1] if self.rng.random() < 0.5 else g)

    def strong(
        self,
        grid: npt.NDArray[np.uint8],
        labels: npt.NDArray[np.uint8],
        keep: npt.NDArray[np.bool_],
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
        """(grid, pseudo-labels, which dies count) of the strong view of a weak view."""
        out = self.warp(image=grid, masks=[labels, keep.astype(np.uint8)])
        g = out["image"].copy()
        lab, k = out["masks"][0].copy(), out["masks"][1].astype(bool)
        on = g > 0
        flip = on & (self.rng.random(g.shape) < self.dropout)
        g[flip] = 3 - g[flip]  # pass <-> fail
        h, w = g.shape
        side = max(1, int(min(h, w) * self.rng.uniform(0.1, self.cutout)))
        r, c = (
            int(self.rng.integers(0, max(1, h - side))),
            int(self.rng.integers(0, max(1, w - side))),
        )
        square = np.zeros(g.shape, bool)
        square[r : r + side, c : c + side] = True
        g[square & on] = 1  # the evidence is gone, so is the label
        k &= on & ~square
        if not on.any():  # never hand the model an empty wafer
            return grid, labels, keep
        return g, lab, k


def to_arrays(
    s: Sample, size: int, aug: Augment | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Encoded input (4, size, size) and target (size, size) with IGNORE off the wafer."""
    grid, mask = aug(s.grid, s.mask) if aug else (s.grid, s.mask)
    if max(grid.shape) > size:  # a rotation can grow the bounding box by a die or two: crop
        grid = grid[:size, :size]
        mask = mask[:size, :size] if mask is not None else None
    x = encode(grid, (size, size))
    y = np.full((size, size), IGNORE, np.uint8)
    if mask is not None:
        h, w = grid.shape
        y[:h, :w] = np.where(grid > 0, mask, IGNORE)
    return x, y


def bucket_of(s: Sample) -> int:
    """Square padded size of a sample's bucket (leaves a die of room for small rotations)."""
    return padded_size(max(s.grid.shape) + 2)


def batches(
    samples: Sequence[Sample],
    batch_size: int,
    rng: np.random.Generator,
    *,
    balanced: bool,
    epoch_size: int | None = None,
    weak_share: float = 0.3,
) -> Iterator[list[int]]:
    """Index batches, each from one bucket.

    With ``balanced``, every wafer label is drawn equally often, and mask-less (weakly
    labelled) wafers make up ``weak_share`` of the draws when the set has both kinds.
    """
    n = len(samples)
    if balanced:
        prim = np.array([s.primary for s in samples])
        weak = np.array([s.mask is None for s in samples])
        p = np.zeros(n)
        groups = [g for g in (weak, ~weak) if g.any()]
        for g in groups:
            counts = np.bincount(prim[g], minlength=len(WAFER_LABELS)).astype(float)
            share = (weak_share if g is weak else 1 - weak_share) if len(groups) == 2 else 1.0
            p[g] = share / counts[prim[g]] / np.count_nonzero(counts)
        order = rng.choice(n, size=epoch_size or n, replace=True, p=p / p.sum())
    else:
        order = rng.permutation(n)[: epoch_size or n]
    buckets: dict[int, list[int]] = {}
    for i in order.tolist():
        b = buckets.setdefault(bucket_of(samples[i]), [])
        b.append(i)
    out = []
    for idx in buckets.values():
        out += [idx[k : k + batch_size] for k in range(0, len(idx), batch_size)]
    for k in rng.permutation(len(out)).tolist():
        yield out[k]


def build_datasets(
    *,
    coco: str | None = None,
    val: str | None = None,
    synth: int = 0,
    synth_seed: int = 1000,
    mixed: float = 0.15,
    workers: int = 0,
    real_npz: str | None = None,
    real_folds: int = 0,
    real_holdout: int = -1,
    samples: Sequence[Sample] = (),
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Training, validation and held-out real sets from the ``waferseg train`` options.

    Without ``val``, 10% of ``coco`` (by position, so runs are reproducible) is validation; 5% of
    the synthetic wafers always are. Real wafers train with their wafer-level labels only; with
    ``real_folds`` and ``real_holdout`` one lot-disjoint fold is kept out and returned third.
    ``samples`` (annotated wafers from the store) split 90/10 like ``coco``.

    Raises:
        InvalidInputError: No training data.
    """
    from waferseg_core.errors import InvalidInputError

    train_set: list[Sample] = []
    val_set: list[Sample] = []
    holdout: list[Sample] = []
    if coco:
        items = coco_samples(coco)
        k = 0 if val else max(1, len(items) // 10)
        train_set += items[k:]
        val_set += items[:k]
    if samples:
        k = max(1, len(samples) // 10) if len(samples) > 1 else 0
        train_set += samples[k:]
        val_set += samples[:k]
    if val:
        val_set += coco_samples(val)
    if synth:
        made = synth_samples(synth, synth_seed, mixed, workers)
        k = max(1, len(made) // 20)
        train_set += made[k:]
        val_set += made[:k]
    if real_npz:
        from waferseg_core.formats.wm811k import read_npz

        maps = read_npz(real_npz)
        real = labelled_samples(
            [m.grid for m in maps], [m.extra["label"] for m in maps], [m.lot for m in maps]
        )
        if real_folds and real_holdout >= 0:
            holdout = [s for s in real if lot_fold(s.lot, real_folds) == real_holdout]
            real = [s for s in real if lot_fold(s.lot, real_folds) != real_holdout]
        train_set += real
    if not train_set:
        raise InvalidInputError(
            "expected training data: coco, annotated stored lots, synth and/or real_npz; found none"
        )
    return train_set, val_set, holdout
