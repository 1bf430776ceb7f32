#!/usr/bin/env bash
# Quick start 2/2: set up .venv when needed, then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
export NO_ALBUMENTATIONS_UPDATE=1
.venv/bin/ruff check .
.venv/bin/ruff format --check waferseg_core app tests bench main.py
.venv/bin/mypy waferseg_core
# One test process per core (pytest-xdist; each gets its own PostgreSQL database): on a slow
# 2-core machine the suite took 21.7 minutes in one process, 16.9 in two. And one torch thread
# per process: two processes each running torch's two OpenMP threads fight over two cores
# (on a 2-core AMD EPYC the suite took 358 s with them, 322 s with one thread each).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
.venv/bin/pytest -n "${WAFERSEG_TEST_WORKERS:-auto}" "$@"
