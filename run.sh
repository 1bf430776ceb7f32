#!/usr/bin/env bash
# Quick start 1/2: set up .venv when needed and start WaferSeg Studio on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python main.py "$@"
