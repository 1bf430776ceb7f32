#!/usr/bin/env bash
# Turns the runs of scripts/train_default_model.sh into the shipped model and its figures:
# ONNX export (parity-checked), static int8 (scripts/quantize_default_model.sh: kept only if it
# agrees on >= 99.9% of dies), the pattern decision calibrated on real wafers out of fold,
# synthetic test-set scores of both, real-wafer cross-validation
# and the inference benchmark (the int8 model the app runs, against fp32 and torch eager).
#   RUNS=out/default bash scripts/finish_default_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-out/default}
NPZ=${NPZ:-../shared/data/wm811k/wm811k_dev.npz}
DEST=resources/models
mkdir -p "$DEST" out
export NO_ALBUMENTATIONS_UPDATE=1
.venv/bin/python - "$RUNS" "$DEST" <<'PY'
import json, sys
from pathlib import Path
from waferseg_core.ml.data import synth_samples
from waferseg_core.ml.export import export_onnx, parity, run_metadata
from waferseg_core.ml.train import load_model
runs, dest = Path(sys.argv[1]), Path(sys.argv[2])
model, cfg = load_model(runs / "full" / "best_model.pt")
onnx_path = dest / "waferseg-default.onnx"
def meta(c, run):  # what inference needs to know of a run: its arch and its coarse views
    return run_metadata(c.arch, c.max_side, source=str(runs / run))
export_onnx(model, onnx_path, metadata=meta(cfg, "full"))
# The fold models are kept beside it (committed): the card's cross-validation can be run again
# from them, and a later run continues each fold from its own (INIT in train_default_model.sh).
(dest / "cv").mkdir(exist_ok=True)
for k in (0, 1):
    fold, fcfg = load_model(runs / f"fold{k}" / "best_model.pt")
    export_onnx(fold, dest / "cv" / f"fold{k}.onnx", metadata=meta(fcfg, f"fold{k}"))
val = synth_samples(256, 4343, 0.15)
report = {"parity": parity(model, onnx_path, val)}
(runs / "export.json").write_text(json.dumps(report, indent=1))
print(json.dumps(report))
PY
bash scripts/quantize_default_model.sh   # the int8 model the app runs, if it agrees (quantize.json)
# The pattern decision's offsets, tuned on the folds' out-of-fold real wafers: each fold model
# gets the other fold's, the shipped models all of them (bench/calibrate_patterns.py).
SHIPPED=("$DEST/waferseg-default.onnx")
[ -f "$DEST/waferseg-default.int8.onnx" ] && SHIPPED+=("$DEST/waferseg-default.int8.onnx")
.venv/bin/python bench/calibrate_patterns.py "$DEST/cv" --npz "$NPZ" --write "${SHIPPED[@]}" \
  --out docs/model/calibration.json > /dev/null
rm -rf out/synth-test
.venv/bin/waferseg synth --count 1000 --seed 999 --mixed 0.15 --out out/synth-test > /dev/null
.venv/bin/waferseg evaluate --model "$DEST/waferseg-default.onnx" --coco out/synth-test/annotations.json \
  --npz "$NPZ" --void-outline 1 > "$RUNS/eval.json"
if [ -f "$DEST/waferseg-default.int8.onnx" ]; then
  .venv/bin/waferseg evaluate --model "$DEST/waferseg-default.int8.onnx" --coco out/synth-test/annotations.json \
    --npz "$NPZ" --void-outline 1 > "$RUNS/eval_int8.json"
fi
.venv/bin/python bench/cv_real.py "$DEST/cv" --npz "$NPZ" > "$RUNS/cv_real.json"   # the exported folds
.venv/bin/waferseg bench > "$RUNS/bench.json"
cat "$RUNS/export.json" docs/model/quantize.json docs/model/calibration.json "$RUNS/eval.json" "$RUNS/cv_real.json" "$RUNS/bench.json"
