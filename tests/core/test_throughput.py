"""Training throughput (waferseg_core/ml/throughput.py, bench/train_throughput.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from waferseg_core.ml.data import synth_samples
from waferseg_core.ml.throughput import build_rate, step_rate
from waferseg_core.ml.train import TrainConfig

BENCH = Path(__file__).parents[2] / "bench" / "train_throughput.py"
TINY = "resnet18-w0.25"


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_both_rates_are_measured_on_the_training_loops_batches():
    samples = synth_samples(24, 5, 0.15)
    assert build_rate(samples, 4, seconds=0.1) > 0
    row = step_rate(samples, TrainConfig(arch=TINY, batch_size=4), torch.device("cpu"), steps=2)
    assert row["batch_size"] == 4
    assert row["wafers_per_s"] > 0 and row["ms_per_step"] > 0


def test_the_bench_reports_rates_and_the_ratios_they_make():
    tiny = ("--arch", TINY, "--count", "30", "--steps", "2", "--seconds", "0.2", "--workers", "3")
    proc = _bench(*tiny, "--batch-sizes", "8", "4", "8", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["device"] == "cpu" and out["arch"] == TINY
    assert [s["batch_size"] for s in out["steps"]] == [4, 8]  # each once, smallest first
    rates = [s["wafers_per_s"] for s in out["steps"]]
    build = out["build_wafers_per_s_per_process"]
    assert out["workers_over_fastest_step"] == pytest.approx(3 * build / max(rates), rel=0.02)
    assert out["largest_over_first_batch"] == pytest.approx(rates[1] / rates[0], rel=0.02)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--steps", "0"), "expected positive --steps, --count and --batch-sizes, found 0"),
        (("--device", "gpu9"), "expected a torch device such as cpu, cuda or cuda:1, found 'gpu9'"),
        (
            ("--arch", "resnet99", "--count", "4"),
            "unknown architecture 'resnet99'; expected one of",
        ),
    ],
)
def test_bad_arguments_get_one_line(args, message):
    proc = _bench(*args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
