"""Architecture rules: no Qt anywhere in waferseg_core, torch only in waferseg_core.ml."""

import pkgutil
import subprocess
import sys
import textwrap

import waferseg_core

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = {blocked!r}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked for this test")
    sys.meta_path.insert(0, Block())
    import importlib
    for mod in {modules!r}:
        importlib.import_module(mod)
    bad = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not bad, bad
    print("ok", len({modules!r}))
    """
)


def _modules(prefix_filter):
    names = [m.name for m in pkgutil.walk_packages(waferseg_core.__path__, "waferseg_core.")]
    # Migration scripts run inside Alembic only (they read alembic.context.config).
    return [n for n in ["waferseg_core", *names] if prefix_filter(n) and ".migrations." not in n]


def _run(blocked, modules):
    code = BLOCKER.format(blocked=blocked, modules=modules)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_core_imports_with_qt_and_torch_blocked():
    mods = _modules(lambda n: not n.startswith("waferseg_core.ml"))
    assert {
        "waferseg_core.synth",
        "waferseg_core.cli",
        "waferseg_core.inference",
        "waferseg_core.store.service",
    } <= set(mods)
    proc = _run(["PySide6", "shiboken6", "pyqtgraph", "torch", "albumentations"], mods)
    assert proc.returncode == 0, proc.stderr


def test_ml_imports_without_qt():
    mods = _modules(lambda n: n.startswith("waferseg_core.ml"))
    proc = _run(["PySide6", "shiboken6", "pyqtgraph"], mods)
    assert proc.returncode == 0, proc.stderr
