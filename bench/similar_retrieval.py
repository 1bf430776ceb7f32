"""How well does similar-wafer search find wafers of the same pattern?

``waferseg similar`` (and the app's Similar wafers window) ranks wafers by the cosine of the
model's embeddings. Here every wafer of a set queries all the others: precision@k is the share of
its k nearest wafers that carry its pattern, averaged over queries (and per pattern), with the
same figure for two baselines computed in the same run: the fail map itself (resampled to 32 x 32
cells, cosine) and chance (the label mix).

- ``synthetic``: single-pattern and clean wafers of a synthetic set the model never saw (the
  model card's test set, seed 999); fair.
- ``real``: the WM-811K dev wafers, all and with the query's own lot left out of the gallery.
  The shipped model trained on their wafer-level labels, so this is a "dev" figure, not a fair
  one (the fail-map baseline is unaffected).

    .venv/bin/python bench/similar_retrieval.py [--model M.onnx] [--npz FILE] [--count 1000]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt

from waferseg_core.formats.wm811k import read_npz
from waferseg_core.inference import DEFAULT_MODEL, Predictor
from waferseg_core.synth import generate
from waferseg_core.wafer import WaferMap

KS = (1, 5, 10)


def fail_map(w: WaferMap, side: int = 32) -> npt.NDArray[np.float64]:
    """The wafer's fail share per cell of a side x side grid laid over it."""
    rows = np.minimum(np.arange(w.rows) * side // w.rows, side - 1)
    cols = np.minimum(np.arange(w.cols) * side // w.cols, side - 1)
    fails = np.zeros((side, side))
    dies = np.zeros((side, side))
    np.add.at(fails, (rows[:, None], cols[None, :]), (w.grid == 2).astype(float))
    np.add.at(dies, (rows[:, None], cols[None, :]), (w.grid > 0).astype(float))
    return (fails / np.maximum(dies, 1)).ravel()


def precision_at(
    vectors: npt.NDArray[np.float64],
    labels: list[str],
    exclude: npt.NDArray[np.bool_] | None = None,
) -> dict[str, Any]:
    """Mean precision@k over queries (every row against all others), overall and per label."""
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    if exclude is not None:
        sims[exclude] = -np.inf
    lab = np.array(labels)
    order = np.argsort(-sims, axis=1, kind="stable")[:, : max(KS)]
    hits = lab[order] == lab[:, None]
    out: dict[str, Any] = {f"p@{k}": round(float(hits[:, :k].mean()), 3) for k in KS}
    out["per_label_p@5"] = {
        name: round(float(hits[lab == name, :5].mean()), 3) for name in sorted(set(labels))
    }
    return out


def chance(labels: list[str]) -> float:
    """Expected precision of a random ranking: the chance that another wafer shares the label."""
    n = len(labels)
    return round(sum(c * (c - 1) for c in Counter(labels).values()) / (n * (n - 1)), 3)


def report(pred: Predictor, wafers: list[WaferMap], labels: list[str], **kw: Any) -> dict[str, Any]:
    """Model embeddings against the fail-map baseline and chance on one set."""
    emb = np.stack([p.embedding for p in pred.predict(wafers)]).astype(np.float64)
    maps = np.stack([fail_map(w) for w in wafers])
    return {
        "wafers": len(wafers),
        "model": precision_at(emb, labels, **kw),
        "fail_map": precision_at(maps, labels, **kw),
        "chance": chance(labels),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--npz", default="../shared/data/wm811k/wm811k_dev.npz")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=999)
    args = ap.parse_args()
    pred = Predictor(args.model)
    synth = [s for s in generate(args.count, args.seed, mixed=0.15) if len(s.patterns) <= 1]
    result: dict[str, Any] = {"model_file": args.model}
    result["synthetic"] = report(
        pred, [s.wafer for s in synth], [s.patterns[0] if s.patterns else "none" for s in synth]
    )
    real = read_npz(args.npz)
    labels = [str(w.extra["label"]) for w in real]
    lots = np.array([w.lot for w in real])
    result["real_dev"] = report(pred, real, labels)
    result["real_dev_other_lots"] = report(
        pred, real, labels, exclude=lots[:, None] == lots[None, :]
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
