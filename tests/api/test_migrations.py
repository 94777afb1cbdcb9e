"""The Alembic migrations are the schema: they must match the models exactly."""

from __future__ import annotations

import subprocess
import sys
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


def test_instances_upgrading_together_take_turns(tmp_path: Path) -> None:
    """Instances of a new release started at once each run the migrations at start-up;
    the second must find the first's work done rather than fail creating its tables.
    (Processes, as in production: Alembic's context is one per process.)"""
    url = _url(tmp_path)
    script = "import sys; from api import db; db.upgrade(db.make_engine(sys.argv[1]))"
    runs = [
        subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    engine = db.make_engine(url)
    try:
        assert db.current_revision(engine) is not None
    finally:
        engine.dispose()
