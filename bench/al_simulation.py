"""Active-learning and FixMatch simulation (synthetic pool, oracle masks); JSON and a PNG plot.

    .venv/bin/python bench/al_simulation.py --quick                 # < 10 min on 2 cores
    .venv/bin/python bench/al_simulation.py --out docs/al --device cuda    # the full run
    .venv/bin/python bench/al_simulation.py --real-npz ../shared/data/wm811k/wm811k_dev.npz \
        --out docs/al          # real wafers: wafer-level labels revealed, scored by macro-F1
    .venv/bin/python bench/al_simulation.py --combine A/al_simulation.json B/al_simulation.json \
        --out docs/al          # the mean of runs with different --seed (curves with +-1 sd)

Prints one JSON object: pool, full_miou (full_macro_f1 on real wafers), per strategy labels_to_95pct (the smallest labelled
share of the pool reaching 95% of the full-pool mIoU; null: not within the ladder) and its
curve, and the FixMatch comparison at 5% labels. ``--out`` also writes al_simulation.json and
learning_curves.png there (al_real.json and learning_curves_real.png for ``--real-npz``;
al_*_seeds.json and learning_curves*_seeds.png for ``--combine``). While it runs, ``--out``
holds al_simulation.partial.json (al_real.partial.json): the full-pool score and every strategy
finished so far, so a run stopped by a time limit still leaves its measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

QUICK = {"pool": 200, "test": 100, "epochs": 6, "steps": 6, "ladder": "0.05,0.1,0.2", "mc": 3}


def _short(result: dict) -> str:
    """The metric's name in the result's keys: ``miou`` (synthetic) or ``macro_f1`` (real)."""
    from waferseg_core.ml.al_sim import metric_key

    return metric_key(result.get("metric", "mean_iou"))


def _stem(result: dict) -> str:
    """The result file's name without ``.json``: by the data the run scored."""
    return "al_simulation" if _short(result) == "miou" else "al_real"


def plot(result: dict, path: Path) -> None:
    """Learning curves (mIoU vs labelled share) as a PNG, drawn with pyqtgraph offscreen."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    pg.setConfigOptions(antialias=True, background="w", foreground="k")
    short = _short(result)
    kind = "synthetic" if short == "miou" else "real WM-811K"
    runs = f", mean of {result['runs']} runs (bars: ±1 sd)" if "runs" in result else ""
    semi = " with FixMatch in every round" if result.get("semi_supervised") else ""
    w = pg.PlotWidget(title=f"Active learning on {result['pool']} {kind} wafers{semi}{runs}")
    w.resize(900, 600)
    w.addLegend(offset=(-10, 10))
    colours = ["#888888", "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4"]
    for (name, d), c in zip(result["strategies"].items(), colours, strict=False):
        xs = [100 * p[0] for p in d["curve"]]
        ys = [p[1] for p in d["curve"]]
        w.plot(xs, ys, pen=pg.mkPen(c, width=2), symbol="o", symbolBrush=c, name=name)
        if "sd" in d:
            w.addItem(
                pg.ErrorBarItem(
                    x=np.array(xs), y=np.array(ys), height=2 * np.array(d["sd"]), pen=c, beam=0.4
                )
            )
    full = result[f"full_{short}"]
    w.addItem(
        pg.InfiniteLine(full, angle=0, pen=pg.mkPen("k", style=pg.QtCore.Qt.PenStyle.DashLine))
    )
    w.addItem(
        pg.InfiniteLine(
            0.95 * full, angle=0, pen=pg.mkPen("#999", style=pg.QtCore.Qt.PenStyle.DotLine)
        )
    )
    if "pretrained_only" in result:  # the synthetic-only model every round started from
        w.addItem(
            pg.InfiniteLine(
                result["pretrained_only"],
                angle=0,
                pen=pg.mkPen("#3cb44b", style=pg.QtCore.Qt.PenStyle.DashDotLine),
            )
        )
    w.setLabel("bottom", "labelled share of the pool (%)")
    name = "mIoU" if short == "miou" else "wafer macro-F1"
    extra = "; dash-dot: no real label" if "pretrained_only" in result else ""
    w.setLabel("left", f"test {name} (dashed: full pool; dotted: 95% of it{extra})")
    w.getAxis("left").enableAutoSIPrefix(False)
    w.show()
    app.processEvents()
    w.grab().save(str(path), "PNG")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: under 10 minutes here")
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--test", type=int, default=300)
    # 1,200 steps: at 300 the full-pool model scored 0.26-0.32, at 1,200 0.55 (two seeds),
    # and a model still that far from trained barely notices which wafers it was given.
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps", type=int, default=60, help="batches per epoch")
    ap.add_argument("--batch-size", type=int, default=16, help="wafers per batch")
    ap.add_argument(
        "--max-dies", type=int, default=62, help="synthetic wafers at most this many dies across"
    )
    ap.add_argument("--ladder", default="0.05,0.1,0.15,0.2,0.3")
    ap.add_argument(  # the likeliest first: a run cut short keeps the strategies it finished
        "--strategies", default="random,hybrid,margin,coreset,entropy,variation,bald"
    )
    ap.add_argument(
        "--semi",
        action="store_true",
        help="every round also learns from the pool's unlabelled rest (FixMatch)",
    )
    ap.add_argument(
        "--fixmatch-labels",
        type=float,
        default=0.05,
        help="labelled share of FixMatch's comparison (0: skip it, two trainings fewer)",
    )
    ap.add_argument("--mc", type=int, default=5, help="MC-dropout passes for bald")
    ap.add_argument(
        "--teacher-ema",
        type=float,
        default=0.0,
        help="FixMatch: pseudo-labels from a moving average of the weights (0: the model itself)",
    )
    ap.add_argument("--arch", default="resnet18-w0.25")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", help="folder for al_simulation.json and learning_curves.png")
    ap.add_argument("--real-npz", help="real wafers with wafer-level labels (WM-811K npz)")
    ap.add_argument("--base", type=int, default=600, help="synthetic wafers in every real round")
    ap.add_argument("--test-fold", type=int, default=1, help="real lots of this fold (of 2) test")
    ap.add_argument(
        "--pretrain",
        default="",
        metavar="EPOCHS,STEPS",
        help="with --real-npz: train on the synthetic wafers first; every round fine-tunes that",
    )
    ap.add_argument("--lr", type=float, default=2e-3, help="learning rate of every round")
    ap.add_argument(
        "--combine",
        nargs="+",
        metavar="JSON",
        help="average these runs' results (same sizes, other --seed) instead of running",
    )
    args = ap.parse_args()
    if args.combine:
        from waferseg_core.ml.al_sim import combine

        sources = [json.loads(Path(f).read_text()) for f in args.combine]
        try:
            result = combine(sources)
        except ValueError as exc:
            sys.exit(f"al_simulation.py: {exc}")
        result["sources"] = [
            {"file": f, "command": r.get("command")}
            for f, r in zip(args.combine, sources, strict=True)
        ]
        report(result, args.out, "_seeds")
        return
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    from waferseg_core.errors import InvalidInputError
    from waferseg_core.ml.active import check_strategy

    try:  # before an hour of training finds it at the first query
        for name in args.strategies.split(","):
            check_strategy(name)
    except InvalidInputError as exc:
        ap.error(f"--strategies: {exc}")
    import torch

    from waferseg_core.ml.al_sim import SimConfig, pretrain, real_data, simulate

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
        batch_size=args.batch_size,
        max_dies_across=args.max_dies,
        semi=args.semi,
        fixmatch_labels=args.fixmatch_labels,
        mc_passes=args.mc,
        teacher_ema=args.teacher_ema,
        device=args.device,
        lr=args.lr,
    )

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    data = (
        real_data(args.real_npz, cfg, base=args.base, test_fold=args.test_fold)
        if args.real_npz
        else None
    )
    stamp = {
        "command": " ".join(["bench/al_simulation.py", *sys.argv[1:]]),
        "seed": args.seed,
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("extra", "init")},
    }

    def partial(result: dict) -> Path | None:
        return Path(args.out) / f"{_stem(result)}.partial.json" if args.out else None

    def keep(result: dict) -> None:  # what a run cut short (a time limit) leaves behind
        if path := partial(result):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**result, **stamp, "partial": True}, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="al-sim-") as work:
        if data and args.pretrain:
            epochs, steps = (int(v) for v in args.pretrain.split(","))
            cfg.init = pretrain(cfg, data.base, Path(work) / "pretrain", epochs, steps)
            log(f"pretrained on {len(data.base)} synthetic wafers ({epochs}x{steps} steps)")
        result = simulate(cfg, Path(work), log, data, progress=keep)
    report({**result, **stamp}, args.out)
    if path := partial(result):
        path.unlink(missing_ok=True)


def report(result: dict, out_dir: str | None, suffix: str = "") -> None:
    """Write the JSON and the plot to ``out_dir`` (if given) and print the one-line brief."""
    short = _short(result)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = _stem(result)
        png = "learning_curves" if short == "miou" else "learning_curves_real"
        (out / f"{stem}{suffix}.json").write_text(json.dumps(result, indent=1) + "\n")
        try:
            plot(result, out / f"{png}{suffix}.png")
        except ImportError as exc:  # a bare GPU machine has no Qt: the JSON is what matters
            print(f"al_simulation.py: no plot ({exc}); --combine draws it", file=sys.stderr)
    brief = {
        "pool": result["pool"],
        f"full_{short}": result[f"full_{short}"],
        "strategies": {
            k: {"labels_to_95pct": v["labels_to_95pct"]} for k, v in result["strategies"].items()
        },
        "fixmatch": result.get("fixmatch"),
    }
    print(json.dumps(brief))


if __name__ == "__main__":
    main()
