#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (idempotent, fast when current).
# Installs the app, the training extra (CPU torch 2.13.0 from the local wheel folder) and the dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=.venv/.waferseg-installed
WANT=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x .venv/bin/python ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
fi
LINKS=()
# torch==2.13.0 (CPU) lies in a local wheel folder on these machines; uv only finds it when told.
for d in "${PIP_FIND_LINKS:-}" /opt/wheels; do
  if [ -n "$d" ] && [ -d "$d" ]; then LINKS+=(--find-links "$d"); break; fi
done
.venv/bin/uv pip install --quiet --python .venv/bin/python "${LINKS[@]}" -e ".[train,dev,wm811k-pkl]"
echo "$WANT" > "$STAMP"
