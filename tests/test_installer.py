"""Builds the one-folder bundle with PyInstaller and runs its --selftest offscreen (slow, CI runs it)."""

import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_bundle_builds_and_passes_its_selftest():
    proc = subprocess.run(
        ["bash", os.path.join(REPO, "installer", "build.sh"), "--no-archive"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["selftest"]["wafers"] == 25 and report["selftest"]["predicted"] == 25
    assert report["size_mb"] > 50
    # torch stays out of the bundle: the app runs on ONNX Runtime alone.
    internal = os.path.join(REPO, "dist", "WaferSegStudio", "_internal")
    assert not os.path.exists(os.path.join(internal, "torch"))
    # The app's model travels, its fp32 original (for training and comparison) does not.
    models = sorted(os.listdir(os.path.join(internal, "resources", "models")))
    assert models == ["MODEL_CARD.md", "waferseg-default.int8.onnx"]
