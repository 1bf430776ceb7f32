#!/usr/bin/env bash
# One prepared run on a lent GPU machine (bare image with python3 + torch, nothing reachable):
# trains the default model's three runs (scripts/train_default_model.sh) and, beside them on the
# same GPU, two active-learning simulations; then copies what is worth keeping to $OUT (at most
# 8 files come back). Wheels for the packages the image lacks travel in .whl/, the real dev
# wafers in .gpu/ (both ignored by git, named in the call's carry):
#   MINUTES=6 bash scripts/device_train.sh
# Back here: unpack $OUT into out/default and run scripts/finish_default_model.sh.
# Preparing the carried folders here (once per checkout; both named in .git/info/exclude):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     albucore==0.0.24 albumentations==2.0.8 annotated-types==0.8.0 pycocotools==2.0.11 \
#     pydantic==2.14.4 pydantic_core==2.50.5 shapely==2.2.0 simsimd==6.5.16 \
#     stringzilla==5.3.2 typing-inspection==0.4.5
#   mkdir -p .gpu && cp ../shared/data/wm811k/wm811k_dev.npz .gpu/
# The simulations, one CPU core each (the training runs' data workers need the rest), each
# with its flags in AL_A and AL_B (2026-11-27's defaults below; change them, not the script):
#   al    core-set against random, seed 15: the CPU runs' 1,200 steps, batches of 32 (not 16)
#   alfm  FixMatch at 5% labels against supervised-only, trained twice as long (40 epochs)
# AL_EXTRA is appended to both (a rehearsal on the CPU passes tiny sizes; the last flag wins).
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-6}  # the runs need ~2.5 more minutes: data first, scoring last
LIMIT=${LIMIT:-555}          # seconds: the training runs are cut here whatever happens
AL_LIMIT=${AL_LIMIT:-540}
DEVICE=${DEVICE:-cuda}
AL_EXTRA=${AL_EXTRA:-}
AL_A=${AL_A:---seed 15 --strategies coreset,random --ladder 0.05,0.1,0.15,0.25}
AL_B=${AL_B:---seed 11 --strategies random --ladder 0.05 --epochs 40}
DEST=${OUT:-out/device}
RUNS=${RUNS:-/tmp/runs}
mkdir -p "$DEST" "$RUNS"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; } \
  > "$RUNS/env.txt" 2>&1
# A run cut short by AL_LIMIT still leaves <out>/al_simulation.partial.json (what it finished).
sim=(python3 bench/al_simulation.py --device "$DEVICE" --threads 1 --batch-size 32)
# shellcheck disable=SC2086  # AL_A, AL_B and AL_EXTRA are lists of flags
timeout "$AL_LIMIT" "${sim[@]}" --out "$RUNS/al" $AL_A $AL_EXTRA > "$RUNS/al.json" 2> "$RUNS/al.log" &
al=$!
# shellcheck disable=SC2086
timeout "$AL_LIMIT" "${sim[@]}" --out "$RUNS/alfm" $AL_B $AL_EXTRA > "$RUNS/alfm.json" \
  2> "$RUNS/alfm.log" &
alfm=$!
NPZ=.gpu/wm811k_dev.npz OUT="$RUNS" DEVICE="$DEVICE" MINUTES="$MINUTES" WORKERS=5 PY=python3 \
  timeout "$LIMIT" bash scripts/train_default_model.sh
wait "$al" "$alfm"
for run in full fold0 fold1; do
  cp "$RUNS/$run/best_model.pt" "$DEST/$run.pt" 2>/dev/null || echo "no model from $run"
done
tar -C "$RUNS" -czf "$DEST/runs.tar.gz" env.txt al.json al.log al alfm.json alfm.log alfm \
  full.log fold0.log fold1.log full/metrics.jsonl fold0/metrics.jsonl fold1/metrics.jsonl \
  full/summary.json fold0/summary.json fold1/summary.json 2>/dev/null
ls -la "$DEST"
tail -n 4 "$RUNS/al.log" "$RUNS/alfm.log"
