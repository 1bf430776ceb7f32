"""Schema migrations shipped in the package, run at start-up by the app and the CLI.

A SQLite file is copied aside (``<file>.bak-<revision>``) before any pending migration runs.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

HERE = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


def head() -> str:
    """The newest revision the package ships."""
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None
    return rev


def current(engine: Engine) -> str | None:
    """The store's revision (None for an empty store)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def backup_sqlite(db: Path, tag: str) -> Path:
    """Copy a SQLite file aside as ``<file>.bak-<tag>``.

    SQLite's online backup gives a consistent copy even in WAL mode with other connections open.
    """
    backup = db.with_name(f"{db.name}.bak-{tag}")
    src, dst = sqlite3.connect(db), sqlite3.connect(backup)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return backup


def upgrade(engine: Engine) -> dict[str, str | None]:
    """Bring the store to the newest revision; back up a SQLite file first when anything runs."""
    before = current(engine)
    target = head()
    backup = None
    if (
        before is not None
        and before != target
        and engine.dialect.name == "sqlite"
        and engine.url.database
    ):
        db = Path(engine.url.database)
        if db.exists() and db.stat().st_size > 0:
            backup = backup_sqlite(db, before)
    if before != target:
        cfg = _config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    return {"from": before, "to": target, "backup": str(backup) if backup else None}
