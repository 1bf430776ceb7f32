#!/usr/bin/env bash
# The model card's side figures, after scripts/finish_default_model.sh: what the shipped models
# score with the plain head's choice (their pattern offsets removed), and what the fold models
# score when quantized to int8 as the shipped model is (with and without their offsets). Copies
# are made in a temporary folder; nothing under resources/ changes.
#   bash scripts/model_variants.sh      # ~10 min on 2 cores
# Writes docs/model/: eval_plain.json, eval_int8_plain.json (synthetic test set and dev wafers),
# cv_real_plain.json, quantize_folds.json, cv_real_int8_folds.json (plain),
# cv_real_int8_folds_calibrated.json.
set -euo pipefail
cd "$(dirname "$0")/.."
NPZ=${NPZ:-../shared/data/wm811k/wm811k_dev.npz}
SRC=resources/models
DOCS=docs/model
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export NO_ALBUMENTATIONS_UPDATE=1
mkdir -p "$TMP/plain/cv" "$TMP/int8" "$TMP/int8_plain"
cp "$SRC/waferseg-default.onnx" "$SRC/waferseg-default.int8.onnx" "$TMP/plain/"
cp "$SRC/cv/fold0.onnx" "$SRC/cv/fold1.onnx" "$TMP/plain/cv/"
.venv/bin/python - "$SRC" "$TMP" "$DOCS" <<'PY'
import json, shutil, sys
from pathlib import Path
import onnx
from waferseg_core.ml.data import synth_samples
from waferseg_core.ml.export import quantize_static, set_metadata
src, tmp, docs = (Path(a) for a in sys.argv[1:4])
for f in [*(tmp / "plain").glob("*.onnx"), *(tmp / "plain" / "cv").glob("*.onnx")]:
    set_metadata(f, {"pattern_offsets": "{}"})
# The same calibration and validation wafers as scripts/quantize_default_model.sh; every fold
# file is kept whatever its agreement (min 0): the point is to score what int8 does to a fold.
calib, val = synth_samples(256, 4242, 0.15), synth_samples(1000, 4343, 0.15)
report = {}
for k in (0, 1):
    out = tmp / "int8" / f"fold{k}.onnx"
    fp32 = src / "cv" / f"fold{k}.onnx"
    r = quantize_static(fp32, out, calib, val, min_agreement=0.0)
    # The fold's cross-fitted offsets, whether or not the quantizer carried the metadata over.
    meta = {p.key: p.value for p in onnx.load(fp32, load_external_data=False).metadata_props}
    set_metadata(out, {"pattern_offsets": meta["pattern_offsets"]})
    report[f"fold{k}"] = r
    shutil.copy(out, tmp / "int8_plain" / out.name)
    set_metadata(tmp / "int8_plain" / out.name, {"pattern_offsets": "{}"})
(docs / "quantize_folds.json").write_text(json.dumps(report, indent=1) + "\n")
print(json.dumps(report))
PY
rm -rf out/synth-test
.venv/bin/waferseg synth --count 1000 --seed 999 --mixed 0.15 --out out/synth-test > /dev/null
for variant in "" int8; do
  .venv/bin/waferseg evaluate --model "$TMP/plain/waferseg-default${variant:+.$variant}.onnx" \
    --coco out/synth-test/annotations.json --npz "$NPZ" --void-outline 1 \
    > "$DOCS/eval${variant:+_$variant}_plain.json"
done
.venv/bin/python bench/cv_real.py "$TMP/plain/cv" --npz "$NPZ" > "$DOCS/cv_real_plain.json"
.venv/bin/python bench/cv_real.py "$TMP/int8_plain" --npz "$NPZ" > "$DOCS/cv_real_int8_folds.json"
.venv/bin/python bench/cv_real.py "$TMP/int8" --npz "$NPZ" \
  > "$DOCS/cv_real_int8_folds_calibrated.json"
for f in eval_plain eval_int8_plain cv_real_plain cv_real_int8_folds cv_real_int8_folds_calibrated; do
  .venv/bin/python -c "import json,sys; d=json.load(open(sys.argv[1])); \
print(sys.argv[1], {k: d[k] for k in ('mean_iou','macro_f1','npz','pooled','folds') if k in d})" \
    "$DOCS/$f.json" | cut -c1-400
done
