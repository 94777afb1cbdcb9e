"""Group commit: many requests' database work in one transaction and one commit.

A durable commit is one fsync (SQLite ``synchronous=FULL``, PostgreSQL's WAL flush),
1-2 ms under load, and the database takes one writer at a time. With one transaction per
request, requests queue for the disk. ``GroupCommit`` runs its jobs in one thread of its
own: it takes every job that arrived while the previous commit was running, runs them one
after the other on one ``Tx`` (``keys.dbapi``) and commits once; only then does each
job's caller get its answer, so nobody is told "done" before it is durable.

A job is a function of the ``Tx``. What it writes stands when it returns or raises a
``ServiceError`` (a refused request may still have used up a token or failed a request:
that is part of its outcome). Any other exception is a fault: then nothing of the group
is committed, that job's caller gets the exception, and the other jobs run again, each in
a transaction of its own, so one broken request cannot cost the others theirs. If the
commit itself fails, every job of the group gets that error and nothing was written.

Used by the citizen app's approval answers (``identity.answering``), where one commit per
answer was most of the time an answer waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
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
    loop: asyncio.AbstractEventLoop
    context: contextvars.Context


class _Fault(Exception):
    def __init__(self, job: _Job[Any], error: BaseException) -> None:
        self.job = job
        self.error = error


class GroupCommit:
    """One thread that runs database jobs in groups, one commit per group."""

    def __init__(self, engine: Engine, *, name: str) -> None:
        self._engine = engine
        self._name = name
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.groups = 0
        """Groups committed so far (for tests and metrics)."""
        self._tx: Tx | None = None
        """The writer thread's connection, kept from one group to the next (taking it from
        the pool and giving it back cost as much as a group's own statements)."""

    async def run(self, function: Callable[[Tx], _T]) -> _T:
        """Run ``function`` with the group's ``Tx``; its result once the group is committed.
        The caller's context variables (request id for the logs) go with it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        job = _Job(function, future, loop, contextvars.copy_context())
        if self._thread is None or self._closed:
            self._start()  # raises once closed: a job queued then would never run
        self._queue.put(job)
        return await future

    def close(self) -> None:
        """Finish the jobs queued so far, then stop the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name}: closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        try:
            self._serve_groups()
        finally:
            self._reset(rollback=False)

    def _serve_groups(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < MAX_JOBS:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            self._run_group(jobs)
            if stop:
                return

    def _run_group(self, jobs: list[_Job[Any]]) -> None:
        outcomes: list[tuple[_Job[Any], bool, Any]] = []
        try:
            if self._tx is None:
                self._tx = Tx.open(self._engine)
                self._tx.grouped = True
            tx = self._tx
            for job in jobs:
                try:
                    outcomes.append((job, True, job.context.run(job.function, tx)))
                except ServiceError as exc:
                    outcomes.append((job, False, exc))
                except BaseException as exc:  # noqa: BLE001 - handed to that job's caller
                    raise _Fault(job, exc) from exc
            tx.commit()
            tx.end_session()
            self.groups += 1
        except _Fault as fault:
            self._reset(rollback=True)  # nothing of this group is committed
            _settle([(fault.job, False, fault.error)])
            for job in jobs:
                if job is not fault.job:
                    self._run_group([job])
            return
        except BaseException as exc:  # noqa: BLE001 - the connection or the commit failed
            self._reset(rollback=False)
            _settle([(job, False, exc) for job in jobs])
            return
        _settle(outcomes)

    def _reset(self, *, rollback: bool) -> None:
        """After a fault, roll back and keep the connection; after a database error, give
        it back to the pool (which rolls back or discards it) and take a new one next time."""
        tx, self._tx = self._tx, None
        if tx is None:
            return
        if rollback:
            try:
                tx.rollback()
                self._tx = tx
                return
            except Exception:  # noqa: BLE001, S110 - the connection is broken: replace it
                pass
        with contextlib.suppress(Exception):  # a broken connection may fail to close too
            tx.close()


def _settle(outcomes: list[tuple[_Job[Any], bool, Any]]) -> None:
    """Hand each caller its outcome, one wake-up per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job[Any], bool, Any]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_deliver, items)


def _deliver(items: list[tuple[_Job[Any], bool, Any]]) -> None:
    for job, ok, value in items:
        if job.future.done():  # the caller went away (cancelled)
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)
