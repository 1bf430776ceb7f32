"""Per-class pseudo-label thresholds that follow how well each class is learned (FlexMatch).

A fixed 0.95 keeps almost only background dies as pseudo-labels: a model early in training is
that sure of little else, so FixMatch mostly teaches it more background. FlexMatch's curriculum
lowers the bar for the classes the model is still learning. Its learning effect counts the
confident predictions of each class; on die grids the classes are far from balanced (background
is most dies), so here the effect is the *share* of a class's predicted dies that are confident,
which does not punish a class for being rare.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


class ClassThresholds:
    """Running per-class thresholds: ``base * M(beta(c))``, never below ``floor``.

    ``beta(c)`` is the moving-average share of the dies predicted ``c`` whose confidence reached
    ``base``, divided by the largest such share; ``M(x) = x / (2 - x)`` (FlexMatch's convex
    mapping) keeps the bar high until a class is well learned. Before any update every class
    uses ``base``.
    """

    def __init__(
        self, base: float, classes: int, *, momentum: float = 0.9, floor: float = 0.5
    ) -> None:
        """Start with ``base`` for all ``classes``; ``momentum`` weighs the past batches."""
        if not 0.0 < base <= 1.0 or not 0.0 <= floor <= base:
            raise ValueError(f"expected 0 <= floor <= base <= 1, found {floor} and {base}")
        self.base, self.floor, self.momentum = base, floor, momentum
        self.confident = np.zeros(classes)
        self.predicted = np.zeros(classes)
        self.seen = False

    def update(self, conf: NDArray[np.floating], label: NDArray[np.integer]) -> None:
        """Fold in one batch: per-die confidence and predicted class of the dies that count."""
        k = len(self.predicted)
        pred = np.bincount(label.ravel(), minlength=k)[:k].astype(float)
        sure = np.bincount(label[conf >= self.base].ravel(), minlength=k)[:k].astype(float)
        m = self.momentum if self.seen else 0.0
        self.predicted = m * self.predicted + (1 - m) * pred
        self.confident = m * self.confident + (1 - m) * sure
        self.seen = True

    def values(self) -> NDArray[np.float64]:
        """The current threshold of every class."""
        if not self.seen:
            return np.full(len(self.predicted), self.base)
        share = np.divide(
            self.confident,
            self.predicted,
            out=np.zeros_like(self.confident),
            where=self.predicted > 0,
        )
        top = share.max()
        # A class never predicted, or no class confident yet, keeps the base threshold.
        beta = np.where(self.predicted > 0, share / top, 1.0) if top > 0 else np.ones_like(share)
        out: NDArray[np.float64] = np.maximum(self.base * beta / (2.0 - beta), self.floor)
        return out

    def of(self, label: NDArray[np.integer]) -> NDArray[np.float64]:
        """Per-die threshold for dies predicted ``label``."""
        out: NDArray[np.float64] = self.values()[label]
        return out
