"""Shared fixtures: the reference data folder and CI strictness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WAFERSEG_SHARED_DATA", REPO.parent / "shared" / "data"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_shared(rel: str) -> Path:
    """Path under ../shared/data; skip with a reason when absent, fail in CI."""
    p = SHARED_DATA / rel
    if not p.exists():
        msg = f"reference data {p} is absent (it lives in ../shared/data beside the checkout)"
        if IN_CI:
            pytest.fail(msg + "; CI must have it")
        pytest.skip(msg)
    return p


@pytest.fixture
def wm811k_npz() -> Path:
    return need_shared("wm811k/wm811k_dev.npz")


@pytest.fixture
def klarf_dir() -> Path:
    return need_shared("formats/klarf")
