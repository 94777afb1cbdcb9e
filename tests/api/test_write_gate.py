"""The per-process write gate of SQLite databases (``api.db``).

Threads of one process queue on a Python lock for SQLite's single writer instead of
SQLite's sleeping busy handler. These tests check the gate's bookkeeping, not its speed
(that is measured in ``bench/``): every write ends up in the file, the gate is released
by commit, rollback, close and garbage collection, reads never wait for it, and a
thread that already writes through one connection is not made to wait for itself.
"""

from __future__ import annotations

import gc
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from api import db


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'gate.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE item (n INTEGER NOT NULL)"))
    yield engine
    engine.dispose()


def gate_of(engine: Engine) -> db._WriteGate:
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert isinstance(raw, db._GatedConnection)
        return raw._gate


def test_concurrent_writers_all_land(engine: Engine) -> None:
    def write(worker: int) -> None:
        for n in range(25):
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO item (n) VALUES (:n)"), {"n": worker * 100 + n})

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(DISTINCT n) FROM item")).scalar() == 150
    assert not gate_of(engine)._lock.locked()


@pytest.mark.parametrize("ending", ["commit", "rollback", "close"])
def test_the_gate_is_held_from_the_first_write_to_the_end(engine: Engine, ending: str) -> None:
    gate = gate_of(engine)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT count(*) FROM item")
        assert not gate._lock.locked()  # reads outside a transaction take no lock
        cursor.execute("INSERT INTO item (n) VALUES (1)")
        assert gate._lock.locked()
        getattr(raw.dbapi_connection, ending)()
        assert not gate._lock.locked()
    finally:
        raw.invalidate()


def test_a_connection_dropped_mid_transaction_releases_the_gate(tmp_path: Path) -> None:
    path = str(tmp_path / "dropped.sqlite3")
    connection = sqlite3.connect(path, factory=db._GatedConnection)
    connection.execute("CREATE TABLE item (n INTEGER)")
    connection.execute("INSERT INTO item VALUES (1)")
    gate = connection._gate
    assert gate._lock.locked()
    del connection
    gc.collect()
    assert not gate._lock.locked()


def test_a_thread_holding_the_gate_is_not_made_to_wait_for_itself(tmp_path: Path) -> None:
    path = str(tmp_path / "self.sqlite3")
    first = sqlite3.connect(path, factory=db._GatedConnection, timeout=0.2)
    first.execute("CREATE TABLE item (n INTEGER)")
    first.execute("INSERT INTO item VALUES (1)")
    second = sqlite3.connect(path, factory=db._GatedConnection, timeout=0.2)
    # Without the gate this is SQLite's own answer to a second writer; the gate must not turn
    # it into a wait of GATE_WAIT_SECONDS (or a deadlock).
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        second.execute("INSERT INTO item VALUES (2)")
    first.commit()
    second.execute("INSERT INTO item VALUES (2)")
    second.commit()
    assert second.execute("SELECT count(*) FROM item").fetchone() == (2,)
    first.close()
    second.close()
