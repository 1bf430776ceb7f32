import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def settings(tmp_path):
    """QSettings isolated in a temporary INI file (never the user's)."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def demo_store(tmp_path, monkeypatch):
    """A SQLite store in a temporary home with the demo lot imported."""
    monkeypatch.setenv("WAFERSEG_HOME", str(tmp_path / "home"))
    from waferseg_core.demo import ensure_demo_store
    from waferseg_core.store.service import Store

    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    user = store.login()
    ensure_demo_store(store, user)
    yield store, user
    store.close()


@pytest.fixture(scope="session")
def predictor():
    from waferseg_core.inference import Predictor

    return Predictor()
