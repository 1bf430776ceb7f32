"""What sets a training run's pace: building batches on the CPU, or the device's steps?

Measures, on the default model's training data (synthetic wafers, seed 1000, 15% mixed):
augmented wafers per second that one data-loading process builds (the training run has
``--workers`` of them), and training wafers per second on the device at each batch size with
the batches prebuilt. When ``workers x build`` is well above the step rate, the data workers are
not the limit; when a larger batch raises the step rate, each step's fixed cost is.

    .venv/bin/python bench/train_throughput.py [--device auto] [--batch-sizes 64 128 256]
        [--arch resnet18-w0.5] [--steps 20] [--count 1000] [--workers 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform

from waferseg_core.errors import InvalidInputError
from waferseg_core.ml.data import synth_samples
from waferseg_core.ml.model import create_model
from waferseg_core.ml.throughput import build_rate, step_rate
from waferseg_core.ml.train import TrainConfig, pick_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--arch", default="resnet18-w0.5")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--count", type=int, default=1000, help="synthetic training wafers")
    ap.add_argument("--workers", type=int, default=5, help="data workers a run has (the ratio)")
    ap.add_argument("--seconds", type=float, default=3.0, help="time spent measuring building")
    args = ap.parse_args()
    if args.steps < 1 or args.count < 1 or min(args.batch_sizes) < 1:
        raise SystemExit(
            f"expected positive --steps, --count and --batch-sizes, found {args.steps}, "
            f"{args.count} and {args.batch_sizes}"
        )
    try:
        device = pick_device(args.device)
    except RuntimeError:
        raise SystemExit(
            f"expected a torch device such as cpu, cuda or cuda:1, found {args.device!r}"
        ) from None
    sizes = sorted(set(args.batch_sizes))  # smallest first: the last ratio compares the ends
    try:
        create_model(args.arch)  # a typo is told before seconds of data building, not after
        samples = synth_samples(args.count, 1000, 0.15)
        build = build_rate(samples, sizes[0], args.seconds)
        steps = [
            step_rate(samples, TrainConfig(arch=args.arch, batch_size=b), device, args.steps)
            for b in sizes
        ]
    except InvalidInputError as e:
        raise SystemExit(str(e)) from None
    fastest = max(s["wafers_per_s"] for s in steps)
    print(
        json.dumps(
            {
                "device": str(device),
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
                "arch": args.arch,
                "build_wafers_per_s_per_process": round(build, 1),
                "steps": steps,
                # Above 1: the data workers can feed the fastest batch size measured.
                "workers_over_fastest_step": round(args.workers * build / fastest, 2),
                "largest_over_first_batch": round(
                    steps[-1]["wafers_per_s"] / steps[0]["wafers_per_s"], 2
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
