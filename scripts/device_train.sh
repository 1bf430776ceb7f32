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
# with its flags in AL_A, AL_B, AL_C and AL_D (an empty one is not run; change them, not the
# script). The defaults (2026-11-27, fourth GPU session) measure FixMatch at 5% labels with an
# averaged teacher against plain FixMatch, each with its supervised-only start, seeds 16 and 18:
#   al_a  seed 16, --teacher-ema 0.99     al_b  seed 16, plain
#   al_c  seed 18, --teacher-ema 0.99     al_d  seed 18, plain
# AL_EXTRA is appended to each (a rehearsal on the CPU passes tiny sizes; the last flag wins).
set -uo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-6}  # the runs need ~2.5 more minutes: data first, scoring last
LIMIT=${LIMIT:-555}          # seconds: the training runs are cut here whatever happens
AL_LIMIT=${AL_LIMIT:-540}
DEVICE=${DEVICE:-cuda}
AL_EXTRA=${AL_EXTRA:-}
FM="--strategies random --ladder 0.05"  # the 5% start and FixMatch only: no strategy rounds
AL_A=${AL_A-$FM --seed 16 --teacher-ema 0.99}
AL_B=${AL_B-$FM --seed 16}
AL_C=${AL_C-$FM --seed 18 --teacher-ema 0.99}
AL_D=${AL_D-$FM --seed 18}
DEST=${OUT:-out/device}
RUNS=${RUNS:-/tmp/runs}
mkdir -p "$DEST" "$RUNS"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; } \
  > "$RUNS/env.txt" 2>&1
echo "training: INIT=${INIT:-} LR=${LR:-2e-3} MINUTES=$MINUTES BATCH=${BATCH:-64} MAX_SIDE=${MAX_SIDE:-0}" \
  >> "$RUNS/env.txt"
# THROUGHPUT="128 256 512": first measure what sets the training's pace at those batch sizes
# (bench/train_throughput.py, about a minute; the training then has that much less time).
if [ -n "${THROUGHPUT:-}" ]; then
  # shellcheck disable=SC2086  # the batch sizes are a list
  python3 bench/train_throughput.py --device "$DEVICE" --batch-sizes $THROUGHPUT \
    > "$RUNS/throughput.json" 2> "$RUNS/throughput.log"
  cat "$RUNS/throughput.json"
fi
# A run cut short by AL_LIMIT still leaves <out>/al_simulation.partial.json (what it finished).
sim=(python3 bench/al_simulation.py --device "$DEVICE" --threads 1 --batch-size 32)
sims=() pids=()
for name in al_a al_b al_c al_d; do
  var=${name^^}
  flags=${!var}
  [ -n "$flags" ] || continue
  # shellcheck disable=SC2086  # the flags are lists
  timeout "$AL_LIMIT" "${sim[@]}" --out "$RUNS/$name" $flags $AL_EXTRA > "$RUNS/$name.json" \
    2> "$RUNS/$name.log" &
  sims+=("$name") pids+=($!)
  echo "$name: $flags $AL_EXTRA" >> "$RUNS/env.txt"
done
NPZ=.gpu/wm811k_dev.npz OUT="$RUNS" DEVICE="$DEVICE" MINUTES="$MINUTES" WORKERS=5 PY=python3 \
  timeout "$LIMIT" bash scripts/train_default_model.sh
[ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"
for run in full fold0 fold1; do
  cp "$RUNS/$run/best_model.pt" "$DEST/$run.pt" 2>/dev/null || echo "no model from $run"
done
logs=()
for name in "${sims[@]}"; do logs+=("$name.json" "$name.log" "$name"); done
tar -C "$RUNS" -czf "$DEST/runs.tar.gz" env.txt throughput.json throughput.log "${logs[@]}" \
  full.log fold0.log fold1.log full/metrics.jsonl fold0/metrics.jsonl fold1/metrics.jsonl \
  full/summary.json fold0/summary.json fold1/summary.json 2>/dev/null
ls -la "$DEST"
for name in "${sims[@]}"; do tail -n 3 "$RUNS/$name.log"; done
