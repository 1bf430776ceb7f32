import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def settings(tmp_path):
    """QSettings isolated in a temporary INI file (never the user's)."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def demo_lot(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFERSEG_HOME", str(tmp_path / "home"))
    from waferseg_core.demo import load_demo_lot

    return load_demo_lot()
