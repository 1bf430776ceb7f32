"""Alembic migrations of the store (run by ``waferseg_core.store.migrate``)."""
