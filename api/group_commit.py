"""Group commit: many requests' database work in one transaction and one commit.

A durable commit is one fsync (SQLite ``synchronous=FULL``, PostgreSQL's WAL flush),
1-2 ms under load, and the database takes one writer at a time. With one transaction per
request, requests queue for the disk. ``GroupCommit`` gathers the jobs that arrive while
the previous group's commit runs, runs them one after the other on one ``Tx``
(``keys.dbapi``) and commits once; only then does each job's caller get its answer, so
nobody is told "done" before it is durable.

The event loop drives the groups: ``run`` adds a job to a list, and a group starts at
once when no commit is in flight, else when it ends. Where a group's jobs run:

* by default, in the writer's own thread, with the commit (one hand-over per group);
* ``run(..., on_loop=True)``: on the event loop itself, and only the commit (the fsync,
  which releases the GIL) goes to the thread. Handing a job to a thread and back cost more
  CPU than the citizen app's answer's own statements (``bench/bench_answer_costs.py``),
  and the two threads taking turns at the GIL cost more again under load. Blocking the
  loop on a lock would stall every request, so a group runs on the loop only when all its
  jobs asked for it, the database is SQLite, and this process's write gate (``api.db``)
  is free at that moment; otherwise in the thread as above. Only short jobs that wait on
  nothing else should ask for it: the loop serves no other request while they run.

A job is a function of the ``Tx``. What it writes stands when it returns or raises a
``ServiceError`` (a refused request may still have used up a token or failed a request:
that is part of its outcome). Any other exception is a fault: then nothing of the group
is committed, that job's caller gets the exception, and the group's other jobs run again
in the next group, so one broken request cannot cost the others theirs. If the commit
itself fails, every job of the group gets that error and nothing was written.

Used by the citizen app's calls (``identity.answering``, ``api/routes/app.py``,
``api/routes/auth.py``) and by refresh grants (``api/routes/oauth.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import Engine

from keys.dbapi import Tx
from keys.errors import ServiceError

_T = TypeVar("_T")

MAX_JOBS = 64
"""Jobs in one transaction at most; a longer queue is several groups in a row."""


@dataclass(slots=True, eq=False)
class _Job(Generic[_T]):
    function: Callable[[Tx], _T]
    future: asyncio.Future[_T]
    context: contextvars.Context
    on_loop: bool


@dataclass(slots=True)
class _Ran:
    """What running a group's jobs gave: each finished job's outcome, or a fault."""

    outcomes: list[tuple[_Job[Any], bool, Any]]
    fault: tuple[_Job[Any], BaseException] | None = None


class GroupCommit:
    """Database jobs in groups, one commit per group, driven by the event loop."""

    def __init__(self, engine: Engine, *, name: str) -> None:
        self._engine = engine
        self._name = name
        self._waiting: list[_Job[Any]] = []
        self._busy = False
        """A group is running or committing; jobs that arrive meanwhile wait for the next."""
        self._closed = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        self.groups = 0
        """Groups committed so far (for tests and metrics)."""
        self.groups_on_loop = 0
        """Of those, the groups whose jobs ran on the event loop."""
        self._tx: Tx | None = None
        """The writer's connection, kept from one group to the next (taking it from the pool
        and giving it back cost as much as a group's own statements)."""

    async def run(self, function: Callable[[Tx], _T], *, on_loop: bool = False) -> _T:
        """Run ``function`` with the group's ``Tx``; its result once the group is committed.
        The caller's context variables (request id for the logs) go with it."""
        if self._closed:
            raise RuntimeError(f"{self._name}: closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._waiting.append(_Job(function, future, contextvars.copy_context(), on_loop))
        if not self._busy:
            self._busy = True
            self._next_group(loop)
        return await future

    def close(self) -> None:
        """Stop taking jobs; wait for the group in flight, then give the connection back."""
        self._closed = True
        self._thread.shutdown(wait=True)
        self._reset(rollback=False)

    def _next_group(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = [job for job in self._waiting[:MAX_JOBS] if not job.future.done()]
        del self._waiting[:MAX_JOBS]
        if not jobs:
            if self._waiting:
                self._next_group(loop)
            else:
                self._busy = False
            return
        try:
            tx = self._connection()
        except Exception as exc:  # noqa: BLE001 - no connection: every caller hears why
            self._failed(loop, jobs, exc)
            return
        if all(job.on_loop for job in jobs) and _hold_gate(tx):
            ran = _run_jobs(jobs, tx)
            if ran.fault is not None:
                self._after_fault(loop, jobs, ran)
                return
            self.groups_on_loop += 1
            self._thread.submit(self._in_thread, loop, jobs, tx, ran)
        else:
            self._thread.submit(self._in_thread, loop, jobs, tx, None)

    def _in_thread(
        self, loop: asyncio.AbstractEventLoop, jobs: list[_Job[Any]], tx: Tx, ran: _Ran | None
    ) -> None:
        """The writer thread's part of a group: its jobs (unless they ran on the loop) and
        the commit; then straight back to the loop (one wake-up per group)."""
        error: BaseException | None = None
        try:
            if ran is None:
                ran = _run_jobs(jobs, tx)
            if ran.fault is None:
                _commit(tx)
        except BaseException as exc:  # noqa: BLE001 - the commit failed: every caller hears it
            error = exc
        try:
            loop.call_soon_threadsafe(self._done, loop, jobs, ran, error)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            self._waiting.clear()
            self._busy = False

    def _done(
        self,
        loop: asyncio.AbstractEventLoop,
        jobs: list[_Job[Any]],
        ran: _Ran | None,
        error: BaseException | None,
    ) -> None:
        if error is not None or ran is None:  # the commit failed: nothing of this group was written
            self._failed(loop, jobs, error or RuntimeError(f"{self._name}: the group did not run"))
            return
        if ran.fault is not None:
            self._after_fault(loop, jobs, ran)
            return
        self.groups += 1
        for job, ok, value in ran.outcomes:
            _settle(job, ok, value)
        self._next_group(loop)

    def _failed(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job[Any]], error: BaseException) -> None:
        """A database error (connection or commit): every job of the group gets it."""
        self._reset(rollback=False)
        for job in jobs:
            _settle(job, False, error)
        self._next_group(loop)

    def _after_fault(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job[Any]], ran: _Ran) -> None:
        """Nothing of the group is committed; the faulty job's caller gets its exception and
        the others go first into the next group."""
        assert ran.fault is not None
        self._reset(rollback=True)
        faulty, exc = ran.fault
        _settle(faulty, False, exc)
        self._waiting[:0] = [job for job in jobs if job is not faulty]
        self._next_group(loop)

    def _connection(self) -> Tx:
        if self._tx is None:
            self._tx = Tx.open(self._engine)
            self._tx.grouped = True
        return self._tx

    def _reset(self, *, rollback: bool) -> None:
        """After a fault, roll back and keep the connection; after a database error, give
        it back to the pool (which rolls back or discards it) and take a new one next time."""
        tx, self._tx = self._tx, None
        if tx is None:
            return
        if rollback:
            try:
                tx.rollback()  # lets go of the write gate too
                self._tx = tx
                return
            except Exception:  # noqa: BLE001, S110 - the connection is broken: replace it
                pass
        with contextlib.suppress(Exception):  # a broken connection may fail to close too
            tx.close()


def _run_jobs(jobs: list[_Job[Any]], tx: Tx) -> _Ran:
    ran = _Ran([])
    for job in jobs:
        try:
            ran.outcomes.append((job, True, job.context.run(job.function, tx)))
        except ServiceError as exc:
            ran.outcomes.append((job, False, exc))
        except BaseException as exc:  # noqa: BLE001 - handed to that job's caller
            ran.fault = (job, exc)
            break
    return ran


def _commit(tx: Tx) -> None:
    tx.commit()
    tx.end_session()
    _release_gate(tx)  # taken ahead of a group that then wrote nothing


def _hold_gate(tx: Tx) -> bool:
    """Take this process's SQLite write gate if it is free now (False on other databases)."""
    try_hold = getattr(tx.dbapi, "try_hold", None)
    return try_hold is not None and bool(try_hold())


def _release_gate(tx: Tx) -> None:
    release = getattr(tx.dbapi, "release_hold", None)
    if release is not None:
        release()


def _settle(job: _Job[Any], ok: bool, value: Any) -> None:
    if job.future.done():  # the caller went away (cancelled)
        return
    if ok:
        job.future.set_result(value)
    else:
        job.future.set_exception(value)
