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

``by_size`` splits the wafers by their larger side (the model sees those over 96 dies across
in blocks, :mod:`waferseg_core.coarse`): wafers, their share of the dies scored, and the mean
IoU of ``grown_1`` and ``shrunk_1`` there; with ``--model`` also the model's (``--phases``: its
block phases), so that its errors can be set beside a one-die outline error wafer size by
wafer size.

    .venv/bin/python bench/synth_ceiling.py [--count 1000] [--seed 999] [--mixed 0.15]
        [--model resources/models/waferseg-default.int8.onnx [--phases 4]]
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
SIZES = ((40, "up to 40"), (60, "41-60"), (96, "61-96"), (10**9, "over 96 (blocks)"))


def size_class(shape: tuple[int, ...]) -> str:
    """The ``by_size`` bucket of a wafer of this shape (its larger side)."""
    return next(name for top, name in SIZES if max(shape) <= top)


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
    ap.add_argument("--model", help="an ONNX model to score beside them, size by size")
    ap.add_argument("--phases", type=int, default=1, help="the model's block phases (1, 2, 4)")
    args = ap.parse_args()
    wafers = list(generate(args.count, args.seed, mixed=args.mixed))
    masks = [None] * len(wafers)
    if args.model:
        from waferseg_core.inference import Predictor

        pred = Predictor(args.model, phases=args.phases)
        masks = [p.mask for p in pred.predict([w.wafer for w in wafers])]
    confs = {k: Confusion() for k in ("fails_only", "grown_1", "shrunk_1")}
    by_size = {
        name: {k: Confusion() for k in ("grown_1", "shrunk_1", "model")} for _, name in SIZES
    }
    counts = {name: [0, 0] for _, name in SIZES}  # wafers, dies
    outline = np.zeros((len(CLASSES), 2), np.int64)  # per class: outline dies, passing ones
    for w, guess in zip(wafers, masks, strict=True):
        grid, mask = w.wafer.grid, w.mask
        on = grid > 0
        confs["fails_only"].add(mask, np.where(grid == 2, mask, 0), on)
        outer, inner = grown(mask, on), shrunk(mask)
        confs["grown_1"].add(mask, outer, on)
        confs["shrunk_1"].add(mask, inner, on)
        bucket = size_class(grid.shape)
        size = by_size[bucket]
        size["grown_1"].add(mask, outer, on)
        size["shrunk_1"].add(mask, inner, on)
        if guess is not None:
            size["model"].add(mask, guess, on)
        counts[bucket][0] += 1
        counts[bucket][1] += int(on.sum())
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
    dies = sum(n for _, n in counts.values())
    out["by_size"] = {}
    for name, size in by_size.items():
        row: dict[str, object] = {
            "wafers": counts[name][0],
            "die_share": round(counts[name][1] / max(dies, 1), 3),
        }
        for kind, conf in size.items():
            if kind != "model" or args.model:
                row[kind] = segmentation_report(conf)["mean_iou"]
        out["by_size"][name] = row
    if args.model:
        out["model"] = {"file": args.model, "phases": args.phases}
    print(json.dumps({"wafers": args.count, "seed": args.seed, "mixed": args.mixed, **out}))


if __name__ == "__main__":
    main()
