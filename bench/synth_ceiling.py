"""How exact must a mask be to reach the synthetic target? Scores of near-perfect predictions.

A synthetic pattern's mask is its whole region, pass dies included, and its fail density falls
off towards the rim (docs/synthetic-data.md), so where a region ends is partly a guess even for
a perfect reader of the map. This scores, on the card's synthetic test set, predictions that
know the true mask and make one kind of error on purpose:

- ``fails_only``: the true class on the region's fail dies, background on its pass dies (what
  "segment the fails" would give);
- ``grown_1``: every region grown by one die (4-neighbours, onto background dies only);
- ``shrunk_1``: every region shrunk by one die (its outline dies become background).

``outline_pass_share`` is, per class, the share of the region's outline dies (those
``shrunk_1`` removes) that pass: dies nothing on the map marks as part of the pattern. If a
one-die error along the outline already costs a class more than the target allows, the target
asks for die-exact outlines of regions whose outline is mostly pass dies.

    .venv/bin/python bench/synth_ceiling.py [--count 1000] [--seed 999] [--mixed 0.15]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy import ndimage

from waferseg_core.classes import CLASSES, PRIORITY
from waferseg_core.metrics import Confusion, segmentation_report
from waferseg_core.synth import generate

CROSS = ndimage.generate_binary_structure(2, 1)


def grown(mask: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Each class's region grown by one die onto background dies (higher priority first)."""
    out = mask.copy()
    for cid in PRIORITY:
        ring = ndimage.binary_dilation(mask == cid, CROSS) & on & (out == 0)
        out[ring] = cid
    return out


def shrunk(mask: np.ndarray) -> np.ndarray:
    """Each class's region without its outline dies (they become background)."""
    out = np.zeros_like(mask)
    for c in CLASSES[1:]:
        inner = ndimage.binary_erosion(mask == c.id, CROSS, border_value=0)
        out[inner] = c.id
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=999)
    ap.add_argument("--mixed", type=float, default=0.15)
    args = ap.parse_args()
    confs = {k: Confusion() for k in ("fails_only", "grown_1", "shrunk_1")}
    outline = np.zeros((len(CLASSES), 2), np.int64)  # per class: outline dies, passing ones
    for w in generate(args.count, args.seed, mixed=args.mixed):
        grid, mask = w.wafer.grid, w.mask
        on = grid > 0
        confs["fails_only"].add(mask, np.where(grid == 2, mask, 0), on)
        confs["grown_1"].add(mask, grown(mask, on), on)
        inner = shrunk(mask)
        confs["shrunk_1"].add(mask, inner, on)
        rim = (mask > 0) & (inner == 0) & on
        np.add.at(outline, (mask[rim].astype(np.int64), 0), 1)
        np.add.at(outline, (mask[rim & (grid == 1)].astype(np.int64), 1), 1)
    out = {}
    for name, conf in confs.items():
        rep = segmentation_report(conf)
        out[name] = {"mean_iou": rep["mean_iou"], "per_class_iou": rep["per_class_iou"]}
    out["outline_pass_share"] = {
        c.name: round(float(outline[c.id, 1] / outline[c.id, 0]), 3)
        for c in CLASSES[1:]
        if outline[c.id, 0]
    }
    print(json.dumps({"wafers": args.count, "seed": args.seed, "mixed": args.mixed, **out}))


if __name__ == "__main__":
    main()
