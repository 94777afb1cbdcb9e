"""Database engine and migrations.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL`` and a busy
timeout, so several worker processes can share the file; PostgreSQL is the scale-out
store. The schema only ever changes through the Alembic migrations in
``api/migrations`` (``eid db upgrade``; ``eid init`` and start-up apply them).

SQLite lets one connection write at a time. When a second one wants to, SQLite's busy
handler sleeps 1, 2, 5, 10 ... 100 ms between tries, so thread-pool threads of one worker
that collide on writes wait far longer than the write takes (a p99 of over a second under
load, measured in ``docs/benchmarks.md``). The threads of one process therefore queue on a
Python lock per database file (``_WriteGate``), taken just before a connection's first
write statement and released right after its commit or rollback, and woken the moment it
is free. Other processes still meet SQLite's own locking and busy handler.
"""

from __future__ import annotations

import fcntl
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, text
from sqlmodel import create_engine

# Import every package's tables so SQLModel.metadata knows them all.
import identity.models  # noqa: F401
import identity.oauth.models  # noqa: F401
import keys.models  # noqa: F401
import signing.models  # noqa: F401
import verification.models  # noqa: F401
from keys.errors import ServiceError

MIGRATIONS = Path(__file__).with_name("migrations")
GATE_WAIT_SECONDS = 5.0
"""How long a writer waits for the process's write gate before going ahead anyway; SQLite's
busy timeout (30 s) then decides, exactly as without the gate. Only reached when one write
transaction is held that long."""


class _WriteGate:
    """Who of this process's connections to one SQLite file may write now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: weakref.ref[_GatedConnection] | None = None
        self._thread: int | None = None

    def enter(self, connection: _GatedConnection) -> bool:
        """Wait for the gate; False when not taken (see ``GATE_WAIT_SECONDS``)."""
        if self._thread == threading.get_ident():
            # This thread already writes through another connection: waiting for itself would
            # deadlock, so go ahead and let SQLite's own locking answer, as without the gate.
            return False
        return self._take(connection, self._lock.acquire(timeout=GATE_WAIT_SECONDS))

    def try_enter(self, connection: _GatedConnection) -> bool:
        """Take the gate if it is free now; False at once otherwise."""
        return self._take(connection, self._lock.acquire(blocking=False))

    def _take(self, connection: _GatedConnection, acquired: bool) -> bool:
        if not acquired:
            return False
        # A connection that disappears without commit or rollback must not keep the gate.
        self._holder = weakref.ref(connection, self._holder_gone)
        self._thread = threading.get_ident()
        return True

    def leave(self) -> None:
        self._holder = None
        self._thread = None
        self._lock.release()

    def _holder_gone(self, reference: weakref.ref[_GatedConnection]) -> None:
        if self._holder is reference:
            self.leave()


_gates: dict[str, _WriteGate] = {}
_gates_lock = threading.Lock()


def _gate_for(database: str) -> _WriteGate:
    key = (
        database if database == ":memory:" or database.startswith("file:") else str(Path(database).resolve())
    )
    with _gates_lock:
        return _gates.setdefault(key, _WriteGate())


class _GatedCursor(sqlite3.Cursor):
    connection: _GatedConnection

    def execute(self, sql: str, parameters: Any = (), /) -> _GatedCursor:
        self.connection.before_statement(sql)
        try:
            super().execute(sql, parameters)
        finally:
            self.connection.after_statement()
        return self

    def executemany(self, sql: str, parameters: Any, /) -> _GatedCursor:
        self.connection.before_statement(sql)
        try:
            super().executemany(sql, parameters)
        finally:
            self.connection.after_statement()
        return self


class _GatedConnection(sqlite3.Connection):
    """A sqlite3 connection that holds its file's write gate from its first write to the end
    of the transaction (commit, rollback, close, or being garbage collected)."""

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._gate = _gate_for(str(database))
        self._holding = False
        self._held_ahead = False
        """Held by ``try_hold`` before any write: reads do not let go of it."""

    def cursor(self, factory: Any = _GatedCursor) -> Any:
        return super().cursor(factory)

    # sqlite3's shortcuts make a plain cursor internally, which would bypass the gate.
    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, parameters)

    def before_statement(self, sql: str) -> None:
        # Reads outside a transaction take no write lock in WAL mode; anything else may.
        if self._holding or self.in_transaction or sql.lstrip()[:6].upper() in ("SELECT", "PRAGMA"):
            return
        self._holding = self._gate.enter(self)

    def try_hold(self) -> bool:
        """Hold the gate from now on if it is free now, ahead of this transaction's first
        write (``api.group_commit`` writes on the event loop only then); False otherwise."""
        if not self._holding:
            self._holding = self._held_ahead = self._gate.try_enter(self)
        return self._holding

    def release_hold(self) -> None:
        """Let go of a gate held by ``try_hold`` for a transaction that wrote nothing."""
        if self._holding and not self.in_transaction:
            self._leave()

    def after_statement(self) -> None:
        # Autocommitted (DDL) or failed at BEGIN; a gate taken ahead stays through the reads
        # before the first write.
        if self._holding and not self._held_ahead and not self.in_transaction:
            self._leave()

    def _leave(self) -> None:
        self._holding = self._held_ahead = False
        self._gate.leave()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if self._holding:
                self._leave()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            if self._holding:
                self._leave()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._holding:
                self._leave()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # No limit on connections (``max_overflow=-1``; a SQLite connection is a file handle):
        # a request that holds the write lock may need a second connection (our OCSP
        # responder's status lookup), and must never wait for one held by a thread that waits
        # for that lock. Threads beyond ``pool_size`` get a connection that is closed after use.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "factory": _GatedConnection},
            pool_size=16,
            max_overflow=-1,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_PG_INIT_LOCK = 0x6569_645F_696E_6974  # "eid_init": the PostgreSQL advisory lock of ``eid init``
INIT_LOCK_WAIT = 600.0
"""Seconds ``eid init`` waits for another one to finish before it gives up."""
_INIT_LOCK_POLL = 0.2


class InitialisationBusy(ServiceError):
    """Another ``eid init`` held the initialisation lock for longer than we wait."""

    status = 503
    public = True
    slug = "initialisation-busy"
    title = "Initialisation busy"


@contextmanager
def initialisation_lock(engine: Engine, *, wait: float = INIT_LOCK_WAIT) -> Iterator[None]:
    """Held while ``eid init`` runs. Every container runs it before it serves, so replicas
    started together would each create the PKI: a second root CA on PostgreSQL, and a
    failed start where both made the same key. They take turns instead, and the later one
    finds everything made. PostgreSQL: a session advisory lock (freed if the process dies
    with its connection). SQLite, whose instances share one host: ``flock`` on a file
    beside the database.

    A turn normally takes seconds. One that does not end (an ``eid init`` stuck on a key
    store waiting for its HSM, say) would keep every other replica waiting without a word,
    so after ``wait`` seconds the wait ends with ``InitialisationBusy`` naming the cause."""
    deadline = time.monotonic() + wait
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            take = text("SELECT pg_try_advisory_lock(:key)")
            while not connection.execute(take, {"key": _PG_INIT_LOCK}).scalar():
                connection.commit()  # no transaction left open while waiting
                _wait_for_turn(deadline, wait)
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_INIT_LOCK})
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".init-lock").open("a") as handle:
        while True:  # freed when the file is closed, or the process ends
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                _wait_for_turn(deadline, wait)
        yield


def _wait_for_turn(deadline: float, wait: float) -> None:
    if time.monotonic() >= deadline:
        raise InitialisationBusy(
            f"another 'eid init' has been initialising this database for over {wait:g} s "
            "(is its key store waiting, an HSM for its PIN?); stop it or let it finish, then try again"
        )
    time.sleep(_INIT_LOCK_POLL)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
