"""Engines and sessions: one ``create_engine(url)`` factory; nothing is opened at import time.

SQLite gets WAL, foreign keys and a busy timeout on every connection; PostgreSQL goes through
psycopg 3. ``default_url()`` is ``WAFERSEG_STORE`` or a SQLite file in the user data folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

BUSY_TIMEOUT_MS = 30_000


def default_url() -> str:
    """``WAFERSEG_STORE``, else ``sqlite:///<user data folder>/store.sqlite``."""
    env = os.environ.get("WAFERSEG_STORE")
    if env:
        return env
    from waferseg_core.demo import data_dir

    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'store.sqlite'}"


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and plain paths; always use psycopg 3 for PostgreSQL."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    return url


def create_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for any SQLAlchemy URL, configured for this project."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Our own transaction control (BEGIN IMMEDIATE for writers) instead of pysqlite's.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers take the write lock up front: a read transaction that later writes could
            # fail with SQLITE_BUSY after another writer committed; readers stay deferred.
            immediate = conn.get_execution_options().get("sqlite_immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: Engine, *, write: bool = False) -> sessionmaker[Session]:
    """Sessions bound to the engine; objects stay readable after commit.

    ``write=True`` sessions take SQLite's write lock when they begin (no effect elsewhere).
    """
    bind = engine.execution_options(sqlite_immediate=True) if write else engine
    return sessionmaker(bind, expire_on_commit=False)
