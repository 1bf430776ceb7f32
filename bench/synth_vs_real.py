"""Compare synthetic wafers with the real WM-811K dev wafers, class by class.

Prints, per class, the fail-die fraction, the radial fail profile (fail fraction in five rings
from centre to edge) and the grid size of both sets, plus a real-vs-synthetic separability
score (ROC AUC of a logistic regression on those statistics; 0.5 = indistinguishable), and
writes a picture of real and synthetic maps side by side.

    .venv/bin/python bench/synth_vs_real.py [--per-class 300] [--seed 7]
        [--npz ../shared/data/wm811k/wm811k_dev.npz] [--out docs/img/synth_vs_real.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from waferseg_core.formats.wm811k import read_npz
from waferseg_core.synth import SINGLE_LABELS, generate_wafer

RINGS = 5
COLORS = {0: (255, 255, 255), 1: (200, 200, 200), 2: (40, 40, 40)}  # BGR: no die, pass, fail


def radial_profile(grid: np.ndarray) -> np.ndarray:
    """Fail fraction of on-wafer dies in RINGS equal-width rings from centre to edge."""
    rs, cs = np.nonzero(grid)
    r0, r1, c0, c1 = rs.min(), rs.max() + 1, cs.min(), cs.max() + 1
    rr, cc = np.meshgrid(
        np.arange(grid.shape[0]) + 0.5, np.arange(grid.shape[1]) + 0.5, indexing="ij"
    )
    rho = np.hypot((rr - (r0 + r1) / 2) / ((r1 - r0) / 2), (cc - (c0 + c1) / 2) / ((c1 - c0) / 2))
    ring = np.clip((rho * RINGS).astype(int), 0, RINGS - 1)
    out = np.zeros(RINGS)
    for k in range(RINGS):
        sel = (ring == k) & (grid > 0)
        out[k] = (grid[sel] == 2).mean() if sel.any() else 0.0
    return out


def features(grid: np.ndarray) -> np.ndarray:
    on = grid > 0
    fail = grid == 2
    frac = fail[on].mean()
    # Clustering: how often a fail die has a fail 4-neighbour, beyond what its rate predicts.
    nb = np.zeros_like(fail, dtype=int)
    nb[1:] += fail[:-1]
    nb[:-1] += fail[1:]
    nb[:, 1:] += fail[:, :-1]
    nb[:, :-1] += fail[:, 1:]
    cluster = (nb[fail] > 0).mean() if fail.any() else 0.0
    return np.concatenate([[frac, cluster], radial_profile(grid)])


def tile(grid: np.ndarray, size: int = 96) -> np.ndarray:
    img = np.zeros((*grid.shape, 3), np.uint8)
    for v, bgr in COLORS.items():
        img[grid == v] = bgr
    h, w = grid.shape
    s = size / max(h, w)
    img = cv2.resize(
        img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_NEAREST
    )
    out = np.full((size, size, 3), 255, np.uint8)
    y0, x0 = (size - img.shape[0]) // 2, (size - img.shape[1]) // 2
    out[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
    return out


def auc_logistic(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """Held-out ROC AUC of a logistic regression telling a (0) from b (1); 0.5 = no tell."""
    x = np.vstack([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    idx = np.random.default_rng(seed).permutation(len(y))
    half = len(y) // 2
    tr, te = idx[:half], idx[half:]
    w = np.zeros(x.shape[1])
    bias = 0.0
    for _ in range(500):
        p = 1 / (1 + np.exp(-(x[tr] @ w + bias)))
        w -= 0.5 * (x[tr].T @ (p - y[tr]) / len(tr) + 1e-3 * w)
        bias -= 0.5 * float((p - y[tr]).mean())
    s = x[te] @ w + bias
    pos, neg = s[y[te] == 1], s[y[te] == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--npz", default="../shared/data/wm811k/wm811k_dev.npz")
    ap.add_argument("--per-class", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="docs/img/synth_vs_real.png")
    ap.add_argument(
        "--small", action="store_true", help="synthetic grids limited to the real size range"
    )
    args = ap.parse_args()

    real = read_npz(args.npz)
    by_class: dict[str, list[np.ndarray]] = {label: [] for label in SINGLE_LABELS}
    for m in real:
        by_class[m.extra["label"]].append(m.grid)
    synth: dict[str, list[np.ndarray]] = {label: [] for label in SINGLE_LABELS}
    i = 0
    while min(len(v) for v in synth.values()) < args.per_class:
        w = generate_wafer(args.seed, i)
        i += 1
        label = w.patterns[0] if w.patterns else "none"
        if len(synth[label]) < args.per_class and (not args.small or w.wafer.cols <= 60):
            synth[label].append(w.wafer.grid)

    report = {}
    print(
        f"{'class':10} {'set':5} {'n':>4} {'fail% p50 [p10-p90]':>22}  radial fail% (centre->edge)      rows x cols p50   AUC"
    )
    for label in SINGLE_LABELS:
        row = {}
        fr = {
            k: np.array([features(g) for g in v[: args.per_class]])
            for k, v in (("real", by_class[label]), ("synth", synth[label]))
        }
        auc = auc_logistic(fr["real"], fr["synth"]) if len(fr["real"]) >= 10 else float("nan")
        for name, grids in (("real", by_class[label]), ("synth", synth[label])):
            f = fr[name]
            frac = f[:, 0] * 100
            prof = np.median(f[:, 2:], axis=0) * 100
            shp = np.median(np.array([g.shape for g in grids]), axis=0)
            row[name] = {
                "n": len(grids),
                "fail_pct_p50": round(float(np.median(frac)), 1),
                "radial_pct": [round(float(v), 1) for v in prof],
                "rows_cols_p50": [int(shp[0]), int(shp[1])],
            }
            print(
                f"{label:10} {name:5} {len(grids):4d} {np.median(frac):8.1f} [{np.quantile(frac, 0.1):4.1f}-{np.quantile(frac, 0.9):5.1f}]"
                f"   {' '.join(f'{v:5.1f}' for v in prof)}   {int(shp[0]):4d} x {int(shp[1]):3d}"
                + (f"   {auc:.2f}" if name == "synth" else "")
            )
        row["auc"] = round(auc, 3)
        report[label] = row
    print(json.dumps({"per_class": report}))

    cols_per_set = 6
    sheet_rows = []
    font = cv2.FONT_HERSHEY_SIMPLEX
    for label in SINGLE_LABELS:
        tiles = [tile(g) for g in by_class[label][:cols_per_set]]
        tiles += [np.full((96, 96, 3), 255, np.uint8)] * (cols_per_set - len(tiles))
        gap = np.full((96, 12, 3), 255, np.uint8)
        stiles = [tile(g) for g in synth[label][:cols_per_set]]
        head = np.full((96, 110, 3), 255, np.uint8)
        cv2.putText(head, label, (4, 52), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        sep = np.full((96, 4, 3), 0, np.uint8)
        sheet_rows.append(np.hstack([head, *tiles, gap, sep, gap, *stiles]))
    title = np.full((30, sheet_rows[0].shape[1], 3), 255, np.uint8)
    cv2.putText(title, "real WM-811K (dev)", (110, 22), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(
        title,
        "synthetic (waferseg synth)",
        (110 + 96 * 6 + 28, 22),
        font,
        0.6,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    sheet = np.vstack([title, *sheet_rows])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, sheet)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
