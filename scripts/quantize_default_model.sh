#!/usr/bin/env bash
# Makes resources/models/waferseg-default.int8.onnx from the shipped fp32 model: static QDQ int8
# (waferseg_core/ml/export.py quantize_static), written only when its per-die argmax agrees with
# fp32 on >= 99.9% of 1,000 synthetic validation wafers. Also scores the agreement on the real
# WM-811K dev wafers (dies and wafer patterns). The report goes to docs/model/quantize.json.
#   bash scripts/quantize_default_model.sh      # ~1 min on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
NPZ=${NPZ:-../shared/data/wm811k/wm811k_dev.npz}
export NO_ALBUMENTATIONS_UPDATE=1
.venv/bin/python - "$NPZ" <<'PY'
import json, sys
from pathlib import Path
from waferseg_core.formats.wm811k import read_npz
from waferseg_core.inference import DEFAULT_FP32, Predictor, model_files
from waferseg_core.ml.data import synth_samples
from waferseg_core.ml.export import fp32_nodes, quantize_static
fp32, int8 = DEFAULT_FP32, model_files(DEFAULT_FP32)["int8"]
calib = synth_samples(256, 4242, 0.15)  # the calibration wafers of scripts/finish_default_model.sh
val = synth_samples(1000, 4343, 0.15)
report = {"command": "bash scripts/quantize_default_model.sh", "fp32_nodes": fp32_nodes(fp32),
          "calibration": "256 synthetic wafers, seed 4242, 15% mixed",
          "validation": "1000 synthetic wafers, seed 4343, 15% mixed"}
report.update(quantize_static(fp32, int8, calib, val))
if report["int8_kept"]:
    wafers = read_npz(sys.argv[1])
    a, b = Predictor(fp32).predict(wafers), Predictor(int8).predict(wafers)
    on = sum(int((w.grid > 0).sum()) for w in wafers)
    same = sum(int(((p.mask == q.mask) & (w.grid > 0)).sum()) for w, p, q in zip(wafers, a, b))
    report["real_dev_wafers"] = len(wafers)
    report["real_die_agreement"] = round(same / on, 5)
    report["real_pattern_agreement"] = round(sum(p.pattern == q.pattern for p, q in zip(a, b)) / len(a), 5)
    report["int8_bytes"] = int8.stat().st_size
Path("docs/model/quantize.json").write_text(json.dumps(report, indent=1) + "\n")
print(json.dumps(report))
PY
