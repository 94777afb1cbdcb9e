"""The Alembic migrations are the schema: they must match the models exactly."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from api import db
from tests.conftest import fresh_database


def _url(tmp_path: Path) -> str:
    """A fresh PostgreSQL database when TEST_POSTGRES_URL is set, else a SQLite file."""
    return fresh_database() or f"sqlite:///{tmp_path / 'm.sqlite3'}"


def test_migrations_produce_the_models_schema(tmp_path: Path) -> None:
    engine = db.make_engine(_url(tmp_path))
    db.upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert diff == [], "models and migrations differ: write a migration for " + repr(diff)


def test_upgrade_is_repeatable_and_downgrade_works(tmp_path: Path) -> None:
    engine = db.make_engine(_url(tmp_path))
    db.upgrade(engine)
    head = db.current_revision(engine)
    db.upgrade(engine)
    assert db.current_revision(engine) == head
    from alembic import command

    command.downgrade(db.alembic_config(engine), "base")
    assert db.current_revision(engine) is None
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    from sqlalchemy import text

    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    engine.dispose()
