"""Benchmark scripts of bench/ imported as modules (bench/ holds scripts, not a package)."""

import importlib.util
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).parents[1] / "bench"


def load(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module, its ``main`` not run."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
