"""Prepared statements run on the DBAPI connection: the token endpoint and the app's answers.

A refresh grant is four small statements. Through SQLAlchemy's ORM each cost ~0.1 ms of
CPU (statement cache key, execution context, result objects), several times the work of
SQLite or PostgreSQL; with the HTTP stack they were most of a grant. These statements are
built with SQLAlchemy Core as usual, compiled once per dialect, and then run on the raw
DBAPI cursor of the session's own transaction: same SQL, same bind conversions, same
transaction (and SQLite write gate), a tenth of the cost.

``Tx.one`` gives the driver's values as they are (most statements select no dates: they
compare them in SQL); ``Tx.converted`` applies SQLAlchemy's result conversions, for the
few reads that need a date back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import configure_mappers
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import Session


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    """The statement in the driver's parameter style."""
    positions: tuple[tuple[str, Callable[[Any], Any] | None], ...] | None
    """Positional styles (SQLite's ``?``): each parameter's name and conversion, in order."""
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]
    """Named styles: the conversions of bound values the dialect needs."""
    literals: dict[str, Any]
    """Values the statement carries itself (``state == "pending"``), by bind name."""
    results: tuple[Callable[[Any], Any] | None, ...]
    """Conversions of the values a SELECT (or a RETURNING) reads, column by column (dates
    on SQLite)."""


class Prepared:
    """A Core statement with bind parameters, compiled on first use for each dialect."""

    __slots__ = ("_by_dialect", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            done = self.statement.compile(dialect=dialect)
            assert isinstance(done, SQLCompiler)  # a SELECT, INSERT or UPDATE
            # Conversions such as dates into SQLite's text form, exactly as SQLAlchemy binds them.
            processors = {
                name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                for name, bind in done.binds.items()
            }
            compiled = _Compiled(
                sql=done.string,
                positions=(
                    tuple((name, processors[name]) for name in done.positiontup or ())
                    if done.positional
                    else None
                ),
                processors=tuple((name, fn) for name, fn in processors.items() if fn is not None),
                literals={
                    name: bind.effective_value for name, bind in done.binds.items() if not bind.required
                },
                results=tuple(
                    column.type.dialect_impl(dialect).result_processor(dialect, None)
                    for column in getattr(self.statement, "exported_columns", ())
                ),
            )
            self._by_dialect[dialect.name] = compiled
        return compiled

    def run(self, tx: Tx, params: Mapping[str, Any]) -> Any:
        """Execute; the DBAPI cursor (``fetchone``, ``rowcount``)."""
        compiled = self._compiled(tx.dialect)
        bound: Sequence[Any] | Mapping[str, Any]
        if compiled.literals:
            params = compiled.literals | dict(params)
        if compiled.positions is not None:
            bound = tuple(params[name] if fn is None else fn(params[name]) for name, fn in compiled.positions)
        else:
            bound = dict(params)
            for name, fn in compiled.processors:
                bound[name] = fn(bound[name])
        tx._pending = True
        cursor = tx.dbapi.cursor()
        cursor.execute(compiled.sql, bound)
        return cursor


class Tx:
    """One request's database transaction, run on its DBAPI connection.

    ``Tx(session)``: the transaction of an ORM session; ``session.commit()`` commits these
    statements with whatever the ORM wrote. ``Tx.open(engine)``: a pooled connection of its
    own (the token endpoint), with an ORM session on the same connection made only when
    some step needs one (``session``); ``commit`` commits both, ``close`` gives the
    connection back (rolling back anything not committed).
    """

    __slots__ = ("_connection", "_dbapi", "_dialect", "_engine", "_pending", "_pooled", "_session", "grouped")

    def __init__(self, session: Session) -> None:
        self._session: Session | None = session
        self.grouped = False
        """True for the shared transaction of ``api.group_commit``, which commits it: steps
        that would commit their own request's work leave that to the group."""
        self._engine: Engine | None = None
        self._pooled: Any = None
        self._connection: Connection | None = None
        self._dbapi: Any = None
        self._pending = False
        self._dialect: Dialect | None = None

    @classmethod
    def open(cls, engine: Engine) -> Tx:
        # The pool's connection itself: SQLAlchemy's ``Connection`` around it is made only
        # for an ORM session (``session``), as most token requests need none.
        tx = cls.__new__(cls)
        tx._engine = engine
        tx._pooled = engine.raw_connection()
        tx._connection = None
        tx._session = None
        tx._dialect = engine.dialect
        tx._dbapi = tx._pooled.dbapi_connection
        tx._pending = False
        tx.grouped = False
        return tx

    @property
    def dialect(self) -> Dialect:
        if self._dialect is None:
            assert self._session is not None
            self._dialect = self._session.get_bind().dialect
        return self._dialect

    @property
    def dbapi(self) -> Any:
        """The DBAPI connection of the current transaction."""
        if self._pooled is None:
            # A session gives its connection back to the pool whenever it commits, so ask it
            # each time: a connection kept from before a commit may be another thread's now.
            assert self._session is not None
            return self._session.connection().connection.dbapi_connection
        return self._dbapi

    @property
    def session(self) -> Session:
        """An ORM session on this transaction's connection (made on first use)."""
        if self._session is None:
            assert self._engine is not None
            if self._connection is None:
                self._connection = Connection(self._engine, connection=self._pooled)
            self._session = Session(bind=self._connection, expire_on_commit=False)
        return self._session

    def end_session(self) -> None:
        """Forget the ORM session of ``Tx.open`` (and the rows it holds) after a commit or
        rollback; the connection stays. A ``Tx`` that outlives one request (group commit)
        must not hand the next request objects read in an earlier transaction."""
        if self._pooled is not None and self._session is not None:
            self._session.close()
            self._session = None

    def commit(self) -> None:
        if self._pooled is None:  # the session's transaction: it commits everything
            assert self._session is not None
            self._session.commit()
            return
        if self._session is not None:
            self._session.commit()
        if self._pending:  # what ran on the DBAPI connection alone
            self._dbapi.commit()
            self._pending = False

    def rollback(self) -> None:
        """Undo what ran on the DBAPI connection of ``Tx.open`` since the last commit; the
        connection stays usable for the next transaction."""
        assert self._pooled is not None
        if self._session is not None:
            self._session.rollback()
            self.end_session()
        self._dbapi.rollback()
        self._pending = False

    def close(self) -> None:
        """Give back a connection of ``Tx.open``; what was not committed is rolled back."""
        if self._pooled is None:
            return
        if self._connection is not None:
            if self._session is not None:
                self._session.close()
            self._connection.close()  # gives the pooled connection back
        else:
            self._pooled.close()  # the pool rolls back what is left
        self._pooled = None

    def __enter__(self) -> Tx:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def one(self, statement: Prepared, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row, or None."""
        cursor = statement.run(self, params)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else tuple(row)

    def converted(self, statement: Prepared, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row as SQLAlchemy would return it: dates as ``datetime`` on SQLite too."""
        row = self.one(statement, params)
        return None if row is None else _convert(row, statement._compiled(self.dialect).results)

    def converted_rows(self, statement: Prepared, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Every row, converted as in ``converted``."""
        cursor = statement.run(self, params)
        try:
            rows = cursor.fetchall()
        finally:
            cursor.close()
        results = statement._compiled(self.dialect).results
        return [_convert(row, results) for row in rows]

    def count(self, statement: Prepared, params: Mapping[str, Any]) -> int:
        """Rows changed by an UPDATE (or inserted by an INSERT)."""
        cursor = statement.run(self, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()


_Model = TypeVar("_Model")


def loaded(model: type[_Model], names: Sequence[str], values: Sequence[Any]) -> _Model:
    """An instance of the mapped ``model`` holding ``values`` as the ORM's own loader makes
    one from a row: committed values, in no session, without running ``__init__``.

    Building a SQLModel table object with ``Model(**values)`` runs its field handling and
    sets each column through the instrumented attributes, ~50 us for a 17-column row
    against ~3 us here; the login path builds several per request."""
    configure_mappers()  # as the ORM does before it loads (at once when nothing is new)
    instance: _Model = model._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    instance.__dict__.update(zip(names, values, strict=True))
    return instance


def _convert(row: Sequence[Any], results: tuple[Callable[[Any], Any] | None, ...]) -> tuple[Any, ...]:
    return tuple(value if fn is None else fn(value) for value, fn in zip(row, results, strict=True))
