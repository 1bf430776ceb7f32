"""Does the shipped int8 model answer the same on CPUs with and without AVX-512 VNNI?

ONNX Runtime picks its int8 kernels by the CPU's instructions; without VNNI it multiplies uint8
by int8 with ``vpmaddubsw``, whose 16-bit pair sums saturate at full-range weights. This runs
both shipped models natively and under QEMU emulating a Haswell (AVX2, no AVX-512) and compares
their logits on 16 synthetic wafers. Needs ``qemu-x86_64`` (Debian: ``apt-get install qemu-user``).

    .venv/bin/python bench/int8_isa.py [MODEL.onnx ...]    # one JSON object
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "resources" / "models"
DEFAULT = [MODELS / "waferseg-default.onnx", MODELS / "waferseg-default.int8.onnx"]


def _run(out: Path, models: list[str]) -> None:
    """Child: the models' per-die logits on the same 16 wafers, saved to ``out``."""
    import onnxruntime as ort

    from waferseg_core.modelio import encode
    from waferseg_core.synth import generate_wafer

    wafers = (generate_wafer(4343, i).wafer for i in range(200))
    x = np.stack([encode(w.grid, (64, 64)) for w in wafers if max(w.shape) <= 64][:16])
    logits = {}
    for m in models:
        s = ort.InferenceSession(m, providers=["CPUExecutionProvider"])
        logits[Path(m).name] = s.run(None, {s.get_inputs()[0].name: x})[0]
    np.savez(out, x=x, **logits)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _run(Path(sys.argv[2]), sys.argv[3:])
        return
    models = [str(Path(m).resolve()) for m in sys.argv[1:]] or [str(m) for m in DEFAULT]
    with tempfile.TemporaryDirectory() as d:
        runs = {}
        for name, prefix in (("native", []), ("haswell", ["qemu-x86_64", "-cpu", "Haswell"])):
            out = Path(d) / f"{name}.npz"
            cmd = [*prefix, sys.executable, __file__, "--child", str(out), *models]
            subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
            runs[name] = np.load(out)
        a, b = runs["native"], runs["haswell"]
        on = a["x"][:, 0] < 0.5  # dies on the wafer
        report = {"wafers": len(a["x"]), "dies": int(on.sum())}
        for m in models:
            k = Path(m).name
            report[k] = {
                "max_abs_logit_diff": float(np.abs(a[k] - b[k]).max()),
                "argmax_agreement": float(
                    ((a[k].argmax(1) == b[k].argmax(1)) & on).sum() / on.sum()
                ),
                "bit_exact": bool(np.array_equal(a[k], b[k])),
            }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
