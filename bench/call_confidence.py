r"""How well each per-wafer score finds the wrong calls on real wafers (out-of-fold models only).

The lot browser ranks wafers by a score so that a reviewer can look at the doubtful calls
first. This measures, on the real WM-811K dev wafers, how well each score separates wrong
calls from right ones: fold k's model predicts the lots it held out (the shipped model trained
on every fold, so it is not used). Scores: ``pattern_probability`` (the head's probability of
the pattern called; the browser's *Conf.*), ``confidence`` (the mean over the dies of each
die's class probability) and ``uncertainty`` (the mean die entropy, reversed: higher = surer),
and ``head_margin`` (the call's head probability less the likeliest other label's), which ranks
single-pattern wafers a little better but calls a mixed-type wafer, whose head rightly gives
several labels high probabilities, doubtful however right its call; the app shows the first.

    .venv/bin/python bench/call_confidence.py resources/models/cv --out docs/model/call_confidence.json

Prints one JSON object: per score the AUROC of "call right" against "call wrong" (0.5: no
better than chance), and the share of wrong calls among the 10% of wafers it ranks least sure,
beside the share of wrong calls over all wafers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

from waferseg_core.formats.wm811k import read_npz
from waferseg_core.inference import Predictor
from waferseg_core.ml.data import lot_fold

LOWEST = 0.10  # the share of wafers a reviewer would open first


def auroc(score: npt.NDArray[np.float64], right: npt.NDArray[np.bool_]) -> float:
    """P(a right call scores above a wrong one), ties counting half (Mann-Whitney)."""
    pos, neg = score[right], score[~right]
    if not len(pos) or not len(neg):
        raise ValueError("expected both right and wrong calls, found only one kind")
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (len(pos) * len(neg)))


def wrong_among_lowest(score: npt.NDArray[np.float64], right: npt.NDArray[np.bool_]) -> float:
    """The share of wrong calls among the ``LOWEST`` share of wafers with the lowest score."""
    n = max(1, round(LOWEST * len(score)))
    order = np.argsort(score, kind="stable")[:n]
    return float((~right[order]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cv", help="folder holding fold0.onnx, fold1.onnx ... (lot-disjoint folds)")
    ap.add_argument("--npz", default="../shared/data/wm811k/wm811k_dev.npz")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--out", help="also write the JSON report here")
    args = ap.parse_args()
    paths = [Path(args.cv) / f"fold{k}.onnx" for k in range(args.folds)]
    missing = [str(p) for p in [*paths, Path(args.npz)] if not p.is_file()]
    if missing:
        sys.exit(f"error: expected the fold models and the npz, found no {missing[0]}")
    maps = read_npz(args.npz)
    right: list[bool] = []
    names = ("pattern_probability", "confidence", "uncertainty", "head_margin")
    scores: dict[str, list[float]] = {name: [] for name in names}
    for k, path in enumerate(paths):
        held = [m for m in maps if lot_fold(m.lot, args.folds) == k]
        for m, p in zip(held, Predictor(path).predict(held), strict=True):
            right.append(p.pattern == str(m.extra["label"]))
            scores["pattern_probability"].append(p.pattern_probability)
            scores["confidence"].append(p.confidence)
            scores["uncertainty"].append(-p.uncertainty)
            other = max(v for n, v in p.wafer_probs.items() if n != p.pattern)
            scores["head_margin"].append(p.pattern_probability - other)
    ok = np.array(right)
    report: dict[str, object] = {
        "command": " ".join(["bench/call_confidence.py", *sys.argv[1:]]),
        "npz": args.npz,
        "wafers": len(ok),
        "wrong_share": round(float((~ok).mean()), 4),
        "lowest_share": LOWEST,
        "scores": {
            name: {
                "auroc": round(auroc(np.array(v), ok), 4),
                "wrong_among_lowest": round(wrong_among_lowest(np.array(v), ok), 4),
            }
            for name, v in scores.items()
        },
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
