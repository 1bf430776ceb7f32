#!/usr/bin/env bash
# Trains the shipped default model: how resources/models/waferseg-default.onnx was made.
#
# Three runs side by side on one GPU:
#   full   synthetic wafers + every real WM-811K dev wafer's label  -> the shipped model
#   fold0  the same, with the real lots of fold 0 held out          -> scored on fold 0
#   fold1  the same, with the real lots of fold 1 held out          -> scored on fold 1
# The real-wafer score in the model card is the lot-disjoint 2-fold cross-validation (fold0 on
# fold 0, fold1 on fold 1), never the full model on wafers it trained on.
#
#   NPZ=../shared/data/wm811k/wm811k_dev.npz OUT=out/default bash scripts/train_default_model.sh
# Knobs (environment): SYNTH, EPOCHS, EPOCH_SIZE, MINUTES, WORKERS, DEVICE, PY, INIT, LR, BATCH,
# MAX_SIDE (wafers more than this many dies across are seen in blocks; 0: the default, 96).
# INIT=resources/models continues the shipped runs: full from INIT/waferseg-default.onnx, each
# fold from its own INIT/cv/fold<k>.onnx (never from full: the fold would have seen its lots).
# Afterwards, on any machine with the train extra: scripts/finish_default_model.sh exports,
# quantizes and scores the result.
set -euo pipefail
cd "$(dirname "$0")/.."
NPZ=${NPZ:-../shared/data/wm811k/wm811k_dev.npz}
OUT=${OUT:-out/default}
SYNTH=${SYNTH:-30000}
EPOCHS=${EPOCHS:-40}
EPOCH_SIZE=${EPOCH_SIZE:-20000}
MINUTES=${MINUTES:-5}
LR=${LR:-2e-3}  # the peak of the cosine schedule (a continuation from INIT may start lower)
WORKERS=${WORKERS:-5}
BATCH=${BATCH:-64}  # wafers per step (bench/train_throughput.py: does a larger one go faster?)
MAX_SIDE=${MAX_SIDE:-0}  # the exported model carries it; the app shows it the same views
DEVICE=${DEVICE:-auto}
PY=${PY:-.venv/bin/python}
export NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
common=(--synth "$SYNTH" --synth-seed 1000 --mixed 0.15 --real-npz "$NPZ" --arch resnet18-w0.5
        --epochs "$EPOCHS" --epoch-size "$EPOCH_SIZE" --batch-size "$BATCH" --lr "$LR" --seed 0
        --max-minutes "$MINUTES" --workers "$WORKERS" --device "$DEVICE" --max-side "$MAX_SIDE"
        --no-export)
INIT=${INIT:-}
if [ -n "$INIT" ]; then
  for f in "$INIT/waferseg-default.onnx" "$INIT/cv/fold0.onnx" "$INIT/cv/fold1.onnx"; do
    [ -f "$f" ] || { echo "INIT=$INIT: expected $f (all three runs continue, or none)" >&2; exit 2; }
  done
fi
mkdir -p "$OUT"
pids=()
for run in full fold0 fold1; do
  extra=()
  case $run in
    fold0) extra=(--real-folds 2 --real-holdout 0) ;;
    fold1) extra=(--real-folds 2 --real-holdout 1) ;;
  esac
  if [ -n "$INIT" ]; then
    case $run in
      full) extra+=(--init "$INIT/waferseg-default.onnx") ;;
      *) extra+=(--init "$INIT/cv/$run.onnx") ;;
    esac
  fi
  "$PY" -m waferseg_core.cli train --out "$OUT/$run" "${common[@]}" "${extra[@]}" \
    > "$OUT/$run.log" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
for run in full fold0 fold1; do echo "== $run"; tail -n 2 "$OUT/$run.log" | cut -c1-600; done
exit $status
