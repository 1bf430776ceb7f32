"""Segmentation and wafer-level metrics from confusion counts (numpy only).

Die metrics count only dies on the wafer. Per-class IoU = tp / (tp + fp + fn); a class absent
from both truth and prediction is left out of the mean (reduction over present classes).
Wafer metrics compare single labels over the 9 wafer classes (8 patterns + none).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import CLASSES, NUM_CLASSES, WAFER_LABELS


@dataclass
class Confusion:
    """Accumulates a confusion matrix (rows truth, columns prediction)."""

    n: int = NUM_CLASSES

    def __post_init__(self) -> None:
        self.matrix = np.zeros((self.n, self.n), np.int64)

    def add(
        self,
        truth: npt.NDArray[np.integer],
        pred: npt.NDArray[np.integer],
        valid: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        """Add the dies (or wafers) where ``valid`` is true."""
        t = truth.ravel().astype(np.int64)
        p = pred.ravel().astype(np.int64)
        if valid is not None:
            keep = valid.ravel()
            t, p = t[keep], p[keep]
        self.matrix += np.bincount(t * self.n + p, minlength=self.n * self.n).reshape(
            self.n, self.n
        )

    @property
    def tp(self) -> npt.NDArray[np.int64]:
        """True positives per class."""
        return np.asarray(np.diag(self.matrix), np.int64)

    @property
    def fp(self) -> npt.NDArray[np.int64]:
        """False positives per class."""
        return np.asarray(self.matrix.sum(0) - self.tp, np.int64)

    @property
    def fn(self) -> npt.NDArray[np.int64]:
        """False negatives per class."""
        return np.asarray(self.matrix.sum(1) - self.tp, np.int64)

    def iou(self) -> npt.NDArray[np.float64]:
        """Per-class IoU (NaN where the class is in neither truth nor prediction)."""
        den = (self.tp + self.fp + self.fn).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, self.tp / den, np.nan)

    def dice(self) -> npt.NDArray[np.float64]:
        """Per-class Dice (F1 over dies)."""
        den = (2 * self.tp + self.fp + self.fn).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, 2 * self.tp / den, np.nan)

    def accuracy(self) -> float:
        """Fraction of counted items predicted right."""
        total = int(self.matrix.sum())
        return float(self.tp.sum() / total) if total else float("nan")


def outline_band(
    mask: npt.NDArray[np.integer], on: npt.NDArray[np.bool_], width: int
) -> npt.NDArray[np.bool_]:
    """Dies within ``width`` steps (4-neighbour) of a boundary between two classes of ``mask``.

    Both dies of a differing neighbour pair are in the band at width 1, so it straddles the
    outline, like the void band PASCAL VOC leaves unscored around object outlines. The wafer's
    own edge is no boundary. Width 0 gives an empty band.
    """
    band = np.zeros(mask.shape, bool)
    if width <= 0:
        return band
    h, w = mask.shape
    for dr, dc in ((0, 1), (1, 0)):
        diff = (mask[: h - dr, : w - dc] != mask[dr:, dc:]) & on[: h - dr, : w - dc] & on[dr:, dc:]
        band[: h - dr, : w - dc] |= diff
        band[dr:, dc:] |= diff
    for _ in range(width - 1):
        grown = band.copy()
        grown[1:] |= band[:-1]
        grown[:-1] |= band[1:]
        grown[:, 1:] |= band[:, :-1]
        grown[:, :-1] |= band[:, 1:]
        band = grown
    out: npt.NDArray[np.bool_] = band & on
    return out


def segmentation_report(conf: Confusion) -> dict[str, object]:
    """mean_iou (over the pattern classes present), per_class_iou, dice, pixel_accuracy."""
    iou = conf.iou()
    per = {c.name: (None if np.isnan(iou[c.id]) else round(float(iou[c.id]), 4)) for c in CLASSES}
    pattern_iou = iou[1:]
    mean = float(np.nanmean(pattern_iou)) if np.isfinite(pattern_iou).any() else float("nan")
    dice = conf.dice()
    return {
        "mean_iou": round(mean, 4),
        "mean_iou_with_background": round(float(np.nanmean(iou)), 4),
        "per_class_iou": per,
        "per_class_dice": {
            c.name: (None if np.isnan(dice[c.id]) else round(float(dice[c.id]), 4)) for c in CLASSES
        },
        "pixel_accuracy": round(conf.accuracy(), 4),
    }


def wafer_report(truth: Sequence[str], pred: Sequence[str]) -> dict[str, object]:
    """wafer_accuracy, macro_f1 (over the labels present in the truth), per-class F1."""
    conf = Confusion(len(WAFER_LABELS))
    idx = {name: i for i, name in enumerate(WAFER_LABELS)}
    conf.add(np.array([idx[t] for t in truth]), np.array([idx[p] for p in pred]))
    f1 = conf.dice()
    present = [i for i in range(len(WAFER_LABELS)) if conf.matrix[i].sum() > 0]
    macro = (
        float(np.mean([0.0 if np.isnan(f1[i]) else f1[i] for i in present]))
        if present
        else float("nan")
    )
    return {
        "wafer_accuracy": round(conf.accuracy(), 4),
        "macro_f1": round(macro, 4),
        "per_class_f1": {
            WAFER_LABELS[i]: round(float(0.0 if np.isnan(f1[i]) else f1[i]), 4) for i in present
        },
        "confusion": conf.matrix.tolist(),
        "labels": list(WAFER_LABELS),
    }
