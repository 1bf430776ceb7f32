"""Agreement between annotators' masks of one wafer, and consensus.

All figures count only dies on the wafer. Cohen's kappa compares two annotators over the 9 mask
classes; Fleiss' kappa compares three or more. Zones: the centre disc (distance from the centre
below 1/3 of the radius), the middle ring (1/3-2/3), the edge ring (beyond 2/3) and the four
quadrants as displayed (notch down). Consensus by majority vote: the class most annotators gave a
die; a tie goes to the class that wins overlaps (``classes.PRIORITY``), background last.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import numpy.typing as npt

from waferseg_core.classes import CLASSES, NUM_CLASSES, PRIORITY
from waferseg_core.errors import InvalidInputError
from waferseg_core.metrics import Confusion
from waferseg_core.modelio import radius_map

Mask = npt.NDArray[np.uint8]


def _check(masks: Sequence[Mask], grid: npt.NDArray[np.uint8], least: int) -> npt.NDArray[np.bool_]:
    if len(masks) < least:
        raise InvalidInputError(
            f"agreement needs at least {least} annotators' masks, found {len(masks)}"
        )
    for m in masks:
        if m.shape != grid.shape:
            raise InvalidInputError(f"mask shape {m.shape} differs from the grid's {grid.shape}")
    on: npt.NDArray[np.bool_] = grid > 0
    return on


def cohen_kappa(a: Mask, b: Mask, grid: npt.NDArray[np.uint8]) -> float:
    """Cohen's kappa of two masks over the wafer's dies (1 = perfect, 0 = chance)."""
    on = _check([a, b], grid, 2)
    conf = Confusion()
    conf.add(a, b, on)
    n = conf.matrix.sum()
    if n == 0:
        return float("nan")
    po = np.trace(conf.matrix) / n
    pe = float((conf.matrix.sum(0) * conf.matrix.sum(1)).sum()) / n**2
    return 1.0 if pe == 1.0 else float((po - pe) / (1 - pe))


def fleiss_kappa(masks: Sequence[Mask], grid: npt.NDArray[np.uint8]) -> float:
    """Fleiss' kappa of three or more masks over the wafer's dies."""
    on = _check(masks, grid, 2)
    labels = np.stack([m[on] for m in masks], axis=1).astype(np.int64)  # (dies, raters)
    n_dies, raters = labels.shape
    if n_dies == 0:
        return float("nan")
    counts = np.stack([(labels == k).sum(1) for k in range(NUM_CLASSES)], axis=1)  # (dies, classes)
    p_i = ((counts**2).sum(1) - raters) / (raters * (raters - 1))
    p_bar = p_i.mean()
    p_j = counts.sum(0) / (n_dies * raters)
    p_e = float((p_j**2).sum())
    return 1.0 if p_e == 1.0 else float((p_bar - p_e) / (1 - p_e))


def per_class(a: Mask, b: Mask, grid: npt.NDArray[np.uint8]) -> dict[str, dict[str, float]]:
    """IoU and Dice per pattern class present in either mask."""
    on = _check([a, b], grid, 2)
    out = {}
    for c in CLASSES[1:]:
        x, y = (a == c.id) & on, (b == c.id) & on
        union = int((x | y).sum())
        if union:
            inter = int((x & y).sum())
            out[c.name] = {
                "iou": round(inter / union, 4),
                "dice": round(2 * inter / (x.sum() + y.sum()), 4),
            }
    return out


def zones(grid: npt.NDArray[np.uint8]) -> dict[str, npt.NDArray[np.bool_]]:
    """Die masks of the centre disc, middle ring, edge ring and the four quadrants."""
    on = grid > 0
    rho = radius_map(grid)
    rows, cols = grid.shape
    rs, cs = np.nonzero(on)
    cy = (rs.min() + rs.max() + 1) / 2 if rs.size else rows / 2
    cx = (cs.min() + cs.max() + 1) / 2 if cs.size else cols / 2
    yy, xx = np.mgrid[0:rows, 0:cols]
    up, left = yy + 0.5 < cy, xx + 0.5 < cx
    return {
        "centre": on & (rho < 1 / 3),
        "middle": on & (rho >= 1 / 3) & (rho < 2 / 3),
        "edge": on & (rho >= 2 / 3),
        "upper_left": on & up & left,
        "upper_right": on & up & ~left,
        "lower_left": on & ~up & left,
        "lower_right": on & ~up & ~left,
    }


def disagreement(masks: Sequence[Mask], grid: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Per die: how many distinct classes the annotators gave, minus one (0 = all agree)."""
    on = _check(masks, grid, 2)
    stack = np.stack(masks)
    distinct = np.zeros(grid.shape, np.uint8)
    for k in range(NUM_CLASSES):
        distinct += (stack == k).any(0).astype(np.uint8)
    return np.where(on, distinct - 1, 0).astype(np.uint8)


def zone_agreement(masks: Sequence[Mask], grid: npt.NDArray[np.uint8]) -> dict[str, float | None]:
    """Fraction of each zone's dies on which every annotator agrees."""
    agree = disagreement(masks, grid) == 0
    return {
        name: (round(float(agree[z].mean()), 4) if z.any() else None)
        for name, z in zones(grid).items()
    }


def majority_vote(masks: Sequence[Mask], grid: npt.NDArray[np.uint8]) -> Mask:
    """Consensus mask: most votes per die; ties to the higher-priority class, background last."""
    on = _check(masks, grid, 1)
    stack = np.stack(masks)
    votes = np.stack([(stack == k).sum(0) for k in range(NUM_CLASSES)])  # (classes, rows, cols)
    order = [*PRIORITY, 0]  # tie-break rank: earlier wins
    best = np.zeros(grid.shape, np.uint8)
    best_votes = np.full(grid.shape, -1)
    for k in order:
        better = votes[k] > best_votes
        best = np.where(better, k, best).astype(np.uint8)
        best_votes = np.where(better, votes[k], best_votes)
    return np.where(on, best, 0).astype(np.uint8)


def connected_region(sel: npt.NDArray[np.bool_], row: int, col: int) -> npt.NDArray[np.bool_]:
    """The 4-connected component of ``sel`` holding die (row, col); empty if that die is off it."""
    out = np.zeros(sel.shape, bool)
    if not (0 <= row < sel.shape[0] and 0 <= col < sel.shape[1]) or not sel[row, col]:
        return out
    stack = [(row, col)]
    out[row, col] = True
    while stack:
        r, c = stack.pop()
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if (
                0 <= rr < sel.shape[0]
                and 0 <= cc < sel.shape[1]
                and sel[rr, cc]
                and not out[rr, cc]
            ):
                out[rr, cc] = True
                stack.append((rr, cc))
    return out


def pick_regions(
    base: Mask,
    masks: dict[str, Mask],
    picks: Sequence[tuple[npt.NDArray[np.bool_], str]],
    grid: npt.NDArray[np.uint8],
) -> Mask:
    """Adjudicate by region: start from ``base`` and, per picked region, take one annotator's dies.

    Later picks override earlier ones where regions overlap; off-wafer dies stay 0.

    Raises:
        InvalidInputError: A pick names an annotator without a mask, or a region of another shape.
    """
    out = base.copy()
    for region, name in picks:
        if name not in masks:
            raise InvalidInputError(
                f"expected one of the annotators {', '.join(sorted(masks))}, found {name!r}"
            )
        if region.shape != grid.shape:
            raise InvalidInputError(f"region shape {region.shape} differs from {grid.shape}")
        out[region] = masks[name][region]
    out[grid == 0] = 0
    return out


def agreement_report(masks: dict[str, Mask], grid: npt.NDArray[np.uint8]) -> dict[str, object]:
    """Everything for one wafer.

    Kappa (Cohen's for two annotators, Fleiss' for more), pairwise per-class IoU and Dice, zone
    agreement and the number of dies in dispute.
    """
    names = sorted(masks)
    ms = [masks[n] for n in names]
    on = _check(ms, grid, 2)
    report: dict[str, object] = {
        "annotators": names,
        "kappa": round(
            cohen_kappa(ms[0], ms[1], grid) if len(ms) == 2 else fleiss_kappa(ms, grid), 4
        ),
        "kappa_kind": "cohen" if len(ms) == 2 else "fleiss",
        "disputed_dies": int((disagreement(ms, grid) > 0)[on].sum()),
        "zones": zone_agreement(ms, grid),
        "pairs": [
            {
                "a": a,
                "b": b,
                "cohen_kappa": round(cohen_kappa(masks[a], masks[b], grid), 4),
                "per_class": per_class(masks[a], masks[b], grid),
            }
            for a, b in combinations(names, 2)
        ],
    }
    return report
