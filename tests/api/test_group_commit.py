"""``api.group_commit``: many requests' writes in one transaction, none lost to another's fault.

On SQLite, and on PostgreSQL too when ``TEST_POSTGRES_URL`` is set. The writes are read
back through a separate connection, so what is checked is what the database holds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from api import db
from api.group_commit import GroupCommit
from identity.errors import ApprovalRejected
from keys.dbapi import Prepared, Tx
from tests.conftest import fresh_database

INSERT = Prepared(text("INSERT INTO item (n) VALUES (:n)"))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'group.sqlite3'}"
    else:
        url = fresh_database() or ""
        if not url:
            pytest.skip("TEST_POSTGRES_URL is not set")
    yield from _with_items(url)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """For what only SQLite has: the process's write gate (``api.db``)."""
    yield from _with_items(f"sqlite:///{tmp_path / 'gate.sqlite3'}")


def _with_items(url: str) -> Iterator[Engine]:
    engine = db.make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE item (n INTEGER PRIMARY KEY)"))
    yield engine
    engine.dispose()


def gate_is_free(engine: Engine) -> bool:
    """Whether another connection can take the write gate at once."""
    other = engine.raw_connection()
    try:
        taken = bool(other.dbapi_connection.try_hold())  # type: ignore[union-attr]
        other.dbapi_connection.release_hold()  # type: ignore[union-attr]
        return taken
    finally:
        other.close()


def stored(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(text("SELECT n FROM item ORDER BY n"))]


def insert(n: int) -> object:
    def job(tx: Tx) -> int:
        INSERT.run(tx, {"n": n}).close()
        return n

    return job


def test_jobs_that_arrive_together_share_one_commit(engine: Engine) -> None:
    writer = GroupCommit(engine, name="test-writer")
    started, release = threading.Event(), threading.Event()

    def first(tx: Tx) -> int:
        started.set()
        release.wait(10)  # the next five queue up meanwhile
        INSERT.run(tx, {"n": 0}).close()
        return 0

    async def scenario() -> list[int]:
        head = asyncio.ensure_future(writer.run(first))
        while not started.is_set():
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(writer.run(insert(n))) for n in range(1, 6)]  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        release.set()
        return list(await asyncio.gather(head, *rest))

    try:
        assert asyncio.run(scenario()) == [0, 1, 2, 3, 4, 5]
        assert writer.groups == 2
    finally:
        writer.close()
    assert stored(engine) == [0, 1, 2, 3, 4, 5]


def test_a_refused_job_keeps_its_writes_and_the_others_land(engine: Engine) -> None:
    writer = GroupCommit(engine, name="test-writer")

    def refused(tx: Tx) -> int:
        INSERT.run(tx, {"n": 7}).close()  # e.g. the token used up by a wrong answer
        raise ApprovalRejected("wrong answer")

    async def scenario() -> list[object]:
        return await asyncio.gather(
            writer.run(insert(1)),  # type: ignore[arg-type]
            writer.run(refused),
            writer.run(insert(2)),  # type: ignore[arg-type]
            return_exceptions=True,
        )

    try:
        first, error, second = asyncio.run(scenario())
    finally:
        writer.close()
    assert (first, second) == (1, 2)
    assert isinstance(error, ApprovalRejected) and str(error) == "wrong answer"
    assert stored(engine) == [1, 2, 7]


def test_a_faulty_job_loses_its_writes_only(engine: Engine) -> None:
    writer = GroupCommit(engine, name="test-writer")
    started, release = threading.Event(), threading.Event()

    def blocker(tx: Tx) -> int:
        started.set()
        release.wait(10)
        INSERT.run(tx, {"n": 1}).close()
        return 1

    def faulty(tx: Tx) -> int:
        INSERT.run(tx, {"n": 50}).close()
        raise RuntimeError("a bug")

    def duplicate(tx: Tx) -> int:  # a database error (primary key) fails that job alone
        INSERT.run(tx, {"n": 3}).close()
        INSERT.run(tx, {"n": 3}).close()
        return 3

    async def scenario() -> list[object]:
        head = asyncio.ensure_future(writer.run(blocker))
        while not started.is_set():
            await asyncio.sleep(0.001)
        rest = [
            asyncio.ensure_future(job)
            for job in (
                writer.run(insert(2)),  # type: ignore[arg-type]
                writer.run(faulty),
                writer.run(duplicate),
                writer.run(insert(4)),  # type: ignore[arg-type]
            )
        ]
        await asyncio.sleep(0.05)
        release.set()
        return list(await asyncio.gather(head, *rest, return_exceptions=True))

    try:
        results = asyncio.run(scenario())
        # The writer goes on after faults.
        assert asyncio.run(writer.run(insert(5))) == 5  # type: ignore[arg-type]
    finally:
        writer.close()
    one, two, fault, dup, four = results
    assert (one, two, four) == (1, 2, 4)
    assert isinstance(fault, RuntimeError) and str(fault) == "a bug"
    assert isinstance(dup, Exception) and not isinstance(dup, ApprovalRejected)
    assert stored(engine) == [1, 2, 4, 5]


def test_a_closed_writer_takes_no_more_jobs(engine: Engine) -> None:
    writer = GroupCommit(engine, name="test-writer")
    assert asyncio.run(writer.run(insert(1))) == 1  # type: ignore[arg-type]
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(writer.run(insert(2)))  # type: ignore[arg-type]
    assert stored(engine) == [1]


def on_thread(n: int, threads: list[int]) -> object:
    def job(tx: Tx) -> int:
        threads.append(threading.get_ident())
        INSERT.run(tx, {"n": n}).close()
        return n

    return job


def test_jobs_for_the_loop_run_on_it_and_only_the_commit_leaves_it(engine: Engine) -> None:
    writer = GroupCommit(engine, name="test-writer")
    threads: list[int] = []

    async def scenario() -> list[int]:
        jobs = [writer.run(on_thread(n, threads), on_loop=True) for n in range(1, 4)]  # type: ignore[arg-type]
        return list(await asyncio.gather(*jobs))

    try:
        assert asyncio.run(scenario()) == [1, 2, 3]
    finally:
        writer.close()
    assert stored(engine) == [1, 2, 3]  # committed: another connection reads them
    if engine.dialect.name == "sqlite":
        assert set(threads) == {threading.get_ident()} and writer.groups_on_loop == writer.groups
    else:  # no write gate to take without waiting: the writer's thread runs them
        assert threading.get_ident() not in threads and writer.groups_on_loop == 0


def test_jobs_for_the_loop_go_to_the_thread_while_another_connection_writes(sqlite_engine: Engine) -> None:
    writer = GroupCommit(sqlite_engine, name="test-writer")
    threads: list[int] = []
    other = sqlite_engine.raw_connection()
    try:
        other.cursor().execute("INSERT INTO item (n) VALUES (100)")  # holds the gate, uncommitted

        async def scenario() -> int:
            job = asyncio.ensure_future(writer.run(on_thread(1, threads), on_loop=True))  # type: ignore[arg-type]
            await asyncio.sleep(0.1)  # the loop goes on meanwhile: it is not blocked on the gate
            assert not job.done()
            await asyncio.to_thread(other.commit)
            return await job

        assert asyncio.run(scenario()) == 1
    finally:
        other.close()
        writer.close()
    assert threads and threading.get_ident() not in threads and writer.groups_on_loop == 0
    assert stored(sqlite_engine) == [1, 100]


def test_a_faulty_job_on_the_loop_loses_its_writes_only(engine: Engine) -> None:
    writer = GroupCommit(engine, name="test-writer")

    def faulty(tx: Tx) -> int:
        INSERT.run(tx, {"n": 50}).close()
        raise RuntimeError("a bug")

    async def scenario() -> list[object]:
        return await asyncio.gather(
            writer.run(insert(1), on_loop=True),  # type: ignore[arg-type]
            writer.run(faulty, on_loop=True),
            writer.run(insert(2), on_loop=True),  # type: ignore[arg-type]
            return_exceptions=True,
        )

    try:
        one, fault, two = asyncio.run(scenario())
        assert asyncio.run(writer.run(insert(3), on_loop=True)) == 3  # type: ignore[arg-type]
    finally:
        writer.close()
    assert (one, two) == (1, 2)
    assert isinstance(fault, RuntimeError) and str(fault) == "a bug"
    assert stored(engine) == [1, 2, 3]
    if engine.dialect.name == "sqlite":  # the rollback let go of the write gate
        assert gate_is_free(engine)


def test_a_group_that_wrote_nothing_lets_go_of_the_write_gate(sqlite_engine: Engine) -> None:
    writer = GroupCommit(sqlite_engine, name="test-writer")
    select_one = Prepared(text("SELECT 1"))
    try:
        assert asyncio.run(writer.run(lambda tx: tx.one(select_one, {}), on_loop=True)) == (1,)
        assert writer.groups_on_loop == 1
        assert gate_is_free(sqlite_engine)  # would wait GATE_WAIT_SECONDS if the reader held it
    finally:
        writer.close()


def test_a_group_on_the_loop_keeps_the_write_gate_from_its_first_read(sqlite_engine: Engine) -> None:
    # Reads before the first write must not let go of the gate taken for the group: the
    # write would then wait for it on the event loop.
    writer = GroupCommit(sqlite_engine, name="test-writer")
    select_one = Prepared(text("SELECT 1"))
    free_between: list[bool] = []

    def read_then_write(tx: Tx) -> int:
        tx.one(select_one, {})
        free_between.append(gate_is_free(sqlite_engine))
        INSERT.run(tx, {"n": 1}).close()
        return 1

    try:
        assert asyncio.run(writer.run(read_then_write, on_loop=True)) == 1
        assert writer.groups_on_loop == 1 and free_between == [False]
        assert gate_is_free(sqlite_engine)  # and let go after the commit
    finally:
        writer.close()
    assert stored(sqlite_engine) == [1]
