"""Choose the coarse scale for large wafers: mIoU by MAX_SIDE and RAMP on validation wafers.

Scores an ONNX model on synthetic wafers (by default validation sets, seeds 996-998, none of them
the model card's test set, seed 999) with every pair of the given constants of
``waferseg_core/coarse.py``, and at full scale (no reduction) as the baseline of the same run;
mean IoU overall and by wafer size (longest side up to 64, 65-150, over 150 dies). A ramp
``a-a`` is a single threshold (the first rule was ``0.4-0.4``).

    .venv/bin/python bench/coarse_scale.py [--count 1000] [--seeds 996,997,998] \
        [--max-side 64,96,128] [--ramp 0.4-0.4,0.25-0.75,0.3-0.7,0.25-0.65] [--model FILE]
"""

from __future__ import annotations

import argparse
import json

from waferseg_core import coarse
from waferseg_core.inference import DEFAULT_MODEL, Predictor
from waferseg_core.metrics import Confusion, segmentation_report
from waferseg_core.synth import generate

SIZES = (("<=64", 64), ("65-150", 150), (">150", 10**9))


def score(model: str, wafers: list, masks: list) -> dict[str, float]:
    """Mean IoU overall and per size band with the current constants."""
    # The module's max side (as constants() sets it), over any the model's file names.
    pred = Predictor(model, cache_size=1, max_side=coarse.MAX_SIDE)
    confs = {name: Confusion() for name, _ in SIZES} | {"all": Confusion()}
    for w, m, r in zip(wafers, masks, pred.predict(wafers), strict=True):
        on = w.grid > 0
        band = next(name for name, top in SIZES if max(w.grid.shape) <= top)
        confs[band].add(m, r.mask, on)
        confs["all"].add(m, r.mask, on)
    return {k: segmentation_report(c)["mean_iou"] for k, c in confs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seeds", default="996,997,998", help="synthetic sets, pooled")
    ap.add_argument("--mixed", type=float, default=0.15)
    ap.add_argument("--max-side", default="64,96,128")
    ap.add_argument("--ramp", default="0.4-0.4,0.25-0.75,0.3-0.7,0.25-0.65")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    args = ap.parse_args()
    seeds = [int(v) for v in args.seeds.split(",")]
    sw = [s for seed in seeds for s in generate(args.count, seed, mixed=args.mixed)]
    wafers, masks = [s.wafer for s in sw], [s.mask for s in sw]
    rows = []
    with coarse.constants(max_side=0):  # the baseline: every wafer at full scale
        rows.append({"max_side": None, "ramp": None, **score(args.model, wafers, masks)})
    for side in (int(v) for v in args.max_side.split(",")):
        for text in args.ramp.split(","):
            low, high = (float(v) for v in text.split("-"))
            with coarse.constants(max_side=side, ramp=(low, high)):
                scores = score(args.model, wafers, masks)
            rows.append({"max_side": side, "ramp": [low, high], **scores})
            print(json.dumps(rows[-1]), flush=True)
    best = max(rows[1:], key=lambda r: r["all"])
    print(json.dumps({"wafers": len(sw), "seeds": seeds, "full_scale": rows[0], "best": best}))


if __name__ == "__main__":
    main()
