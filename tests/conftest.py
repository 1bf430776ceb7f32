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


@pytest.fixture(scope="session")
def wm811k_npz() -> Path:
    return need_shared("wm811k/wm811k_dev.npz")


@pytest.fixture
def klarf_dir() -> Path:
    return need_shared("formats/klarf")


def _pg_admin_url() -> str:
    return os.environ.get(
        "WAFERSEG_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database for this test session (dropped at the end)."""
    import uuid

    import sqlalchemy as sa

    admin = sa.create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.exec_driver_sql("select 1")
    except Exception as exc:
        msg = f"PostgreSQL at {_pg_admin_url()} is unreachable: {exc.__class__.__name__}"
        if IN_CI:
            pytest.fail(msg + "; CI must reach it")
        pytest.skip(msg)
    name = f"waferseg_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = _pg_admin_url().rsplit("/", 1)[0] + "/" + name
    yield url
    import gc

    gc.collect()
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def pg_store_url(pg_url):
    """The session's PostgreSQL database, emptied for this test."""
    import sqlalchemy as sa

    eng = sa.create_engine(pg_url)
    with eng.begin() as c:
        c.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    eng.dispose()
    return pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A store URL on each backend; the PostgreSQL one is emptied before each test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("pg_store_url")
