"""Figures behind the dashboard: patterns per lot, model-vs-annotation, stacked lot maps.

Patterns are counted by the model and by the annotators (final masks); a lot's stacked map
shows its fails and the model's classes die position by die position.

Every lot's wafers are predicted through the store's cache (:func:`predict_stored`), so the
dashboard of a lot seen before costs a query, not a model run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import WAFER_LABELS
from waferseg_core.inference import Predictor
from waferseg_core.metrics import Confusion
from waferseg_core.patterns import pattern_from_mask
from waferseg_core.stacking import StackedMap, stack
from waferseg_core.store.predict import predict_stored
from waferseg_core.store.review_ops import wafer_masks
from waferseg_core.store.service import Store, UserRef

PATTERNS = list(WAFER_LABELS)  # the 8 classes and "none"


@dataclass
class LotStats:
    """One lot's pattern counts by the model and by the annotations (final masks)."""

    lot: str
    wafers: int = 0
    model: dict[str, int] = field(default_factory=dict)
    annotated: dict[str, int] = field(default_factory=dict)

    def fractions(self) -> dict[str, float]:
        """Share of the lot's wafers per model pattern."""
        return {p: self.model.get(p, 0) / max(self.wafers, 1) for p in PATTERNS}


@dataclass
class Dashboard:
    """Per-lot stats in lot order and the die-level confusion of model vs annotations."""

    lots: list[LotStats]
    confusion: npt.NDArray[np.int64]
    compared_wafers: int

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready figures."""
        return {
            "lots": [
                {"lot": s.lot, "wafers": s.wafers, "model": s.model, "annotated": s.annotated}
                for s in self.lots
            ],
            "confusion": self.confusion.tolist(),
            "compared_wafers": self.compared_wafers,
        }


def dashboard(
    store: Store, actor: UserRef, predictor: Predictor, lots: list[str] | None = None
) -> Dashboard:
    """Figures for the named lots (default: every lot, by name)."""
    names = lots if lots is not None else [x["name"] for x in store.lots(actor)]
    conf = Confusion()
    compared = 0
    out = []
    for lot in names:
        stats = LotStats(lot)
        ids = [r["id"] for r in store.list_wafers(actor, lot=lot)]
        for chunk in predict_stored(store, actor, predictor, ids):
            for p in chunk:
                stats.wafers += 1
                stats.model[p.pattern] = stats.model.get(p.pattern, 0) + 1
                final = wafer_masks(store, actor, p.wafer_id).final()
                if final is None:
                    continue
                grid = p.wafer.grid
                name = pattern_from_mask(final, grid)
                stats.annotated[name] = stats.annotated.get(name, 0) + 1
                conf.add(final, p.mask, grid > 0)
                compared += 1
        out.append(stats)
    return Dashboard(out, conf.matrix.astype(np.int64), compared)


def lot_stack(
    store: Store, actor: UserRef, lots: Sequence[str], predictor: Predictor | None = None
) -> StackedMap:
    """Stored lots' wafers stacked as one: fails, and with a predictor the model's classes too.

    Several lots of one product stack into one map (a week of lots, say). Not part of
    :func:`dashboard`, which covers every lot: a stack holds nine shares per die position, so
    the dashboard makes the shown lot's alone.

    Raises:
        InvalidInputError: A lot that does not exist, or no wafers at all.
    """
    store.require_lots(actor, lots)
    ids = [r["id"] for lot in dict.fromkeys(lots) for r in store.list_wafers(actor, lot=lot)]
    if predictor is None:
        return stack([store.wafer(actor, i).grid for i in ids])
    preds = [p for chunk in predict_stored(store, actor, predictor, ids) for p in chunk]
    return stack([p.wafer.grid for p in preds], [p.mask for p in preds])
