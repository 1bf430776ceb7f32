"""Active-learning and FixMatch simulation (synthetic pool, oracle masks); JSON and a PNG plot.

    .venv/bin/python bench/al_simulation.py --quick                 # < 10 min on 2 cores
    .venv/bin/python bench/al_simulation.py --out docs/al --device cuda    # the full run

Prints one JSON object: pool, full_miou, per strategy labels_to_95pct (the smallest labelled
share of the pool reaching 95% of the full-pool mIoU; null: not within the ladder) and its
curve, and the FixMatch comparison at 5% labels. ``--out`` also writes al_simulation.json and
learning_curves.png there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

QUICK = {"pool": 200, "test": 100, "epochs": 6, "steps": 6, "ladder": "0.05,0.1,0.2", "mc": 3}


def plot(result: dict, path: Path) -> None:
    """Learning curves (mIoU vs labelled share) as a PNG, drawn with pyqtgraph offscreen."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    pg.setConfigOptions(antialias=True, background="w", foreground="k")
    w = pg.PlotWidget(title=f"Active learning on {result['pool']} synthetic wafers")
    w.resize(900, 600)
    w.addLegend(offset=(-10, 10))
    colours = ["#888888", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4"]
    for (name, d), c in zip(result["strategies"].items(), colours, strict=False):
        xs = [100 * p[0] for p in d["curve"]]
        ys = [p[1] for p in d["curve"]]
        w.plot(xs, ys, pen=pg.mkPen(c, width=2), symbol="o", symbolBrush=c, name=name)
    full = result["full_miou"]
    w.addItem(
        pg.InfiniteLine(full, angle=0, pen=pg.mkPen("k", style=pg.QtCore.Qt.PenStyle.DashLine))
    )
    w.addItem(
        pg.InfiniteLine(
            0.95 * full, angle=0, pen=pg.mkPen("#999", style=pg.QtCore.Qt.PenStyle.DotLine)
        )
    )
    w.setLabel("bottom", "labelled share of the pool (%)")
    w.setLabel("left", "test mIoU (dashed: full pool; dotted: 95% of it)")
    w.getAxis("left").enableAutoSIPrefix(False)
    w.show()
    app.processEvents()
    w.grab().save(str(path), "PNG")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: under 10 minutes here")
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--steps", type=int, default=40, help="batches per epoch")
    ap.add_argument("--ladder", default="0.05,0.1,0.15,0.2,0.3")
    ap.add_argument("--strategies", default="random,entropy,margin,variation,bald,coreset,hybrid")
    ap.add_argument("--mc", type=int, default=5, help="MC-dropout passes for bald")
    ap.add_argument("--arch", default="resnet18-w0.25")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", help="folder for al_simulation.json and learning_curves.png")
    args = ap.parse_args()
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    import torch

    from waferseg_core.ml.al_sim import SimConfig, simulate

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = SimConfig(
        pool=args.pool,
        test=args.test,
        seed=args.seed,
        ladder=tuple(float(x) for x in args.ladder.split(",")),
        strategies=tuple(args.strategies.split(",")),
        arch=args.arch,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        mc_passes=args.mc,
        device=args.device,
    )

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="al-sim-") as work:
        result = simulate(cfg, Path(work), log)
    result["command"] = " ".join(["bench/al_simulation.py", *sys.argv[1:]])
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "al_simulation.json").write_text(json.dumps(result, indent=1) + "\n")
        plot(result, out / "learning_curves.png")
    brief = {
        "pool": result["pool"],
        "full_miou": result["full_miou"],
        "strategies": {
            k: {"labels_to_95pct": v["labels_to_95pct"]} for k, v in result["strategies"].items()
        },
        "fixmatch": result["fixmatch"],
    }
    print(json.dumps(brief))


if __name__ == "__main__":
    main()
