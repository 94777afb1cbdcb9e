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
    engine = db.make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE item (n INTEGER PRIMARY KEY)"))
    yield engine
    engine.dispose()


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
