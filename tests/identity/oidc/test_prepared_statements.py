"""``keys.dbapi``: prepared statements on the DBAPI connection behave like the ORM."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, bindparam, select
from sqlmodel import Session, SQLModel

from api import db
from identity.oauth.models import OAuthToken
from identity.oauth.tokens import _INSERT
from keys.dbapi import Prepared, Tx
from keys.models import as_utc, utcnow

_TOKENS = OAuthToken.__table__  # type: ignore[attr-defined]
_LATER_THAN = Prepared(select(_TOKENS.c.grant_id).where(_TOKENS.c.access_expires_at > bindparam("now")))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'sql.db'}")
    SQLModel.metadata.create_all(engine)
    yield engine
    engine.dispose()


def _row(grant_id: str, expires_in: timedelta) -> dict[str, object]:
    now = utcnow()
    return {
        "client_id": "c",
        "citizen_id": None,
        "grant_id": grant_id,
        "scope": "openid",
        "access_token_hash": grant_id.ljust(64, "0"),
        "refresh_token_hash": None,
        "issued_at": now,
        "access_expires_at": now + expires_in,
        "refresh_expires_at": None,
    }


def test_dates_are_bound_as_the_orm_stores_them(engine: Engine) -> None:
    with Tx.open(engine) as tx:
        tx.count(_INSERT, _row("g-soon", timedelta(seconds=5)))
        tx.count(_INSERT, _row("g-gone", -timedelta(seconds=5)))
        tx.commit()
    with Session(engine) as session:
        stored = session.execute(select(OAuthToken).where(_TOKENS.c.grant_id == "g-soon")).scalar_one()
        assert timedelta(0) < as_utc(stored.access_expires_at) - utcnow() <= timedelta(seconds=5)
    with Tx.open(engine) as tx:
        assert tx.one(_LATER_THAN, {"now": utcnow()}) == ("g-soon",)


def test_what_is_not_committed_is_rolled_back(engine: Engine) -> None:
    with Tx.open(engine) as tx:
        tx.count(_INSERT, _row("g-lost", timedelta(minutes=1)))
    with Tx.open(engine) as tx:
        assert tx.one(_LATER_THAN, {"now": utcnow()}) is None


def test_an_orm_session_shares_the_transaction(engine: Engine) -> None:
    with Tx.open(engine) as tx:
        tx.count(_INSERT, _row("g-both", timedelta(minutes=1)))
        # Seen by the session made afterwards on the same connection, before any commit.
        assert tx.session.execute(select(_TOKENS.c.grant_id)).scalars().all() == ["g-both"]
        tx.commit()
    with Session(engine) as session:
        assert session.execute(select(_TOKENS.c.grant_id)).scalars().all() == ["g-both"]


def test_a_session_backed_transaction_commits_with_the_session(engine: Engine) -> None:
    with Session(engine) as session:
        tx = Tx(session)
        tx.count(_INSERT, _row("g-session", timedelta(minutes=1)))
        tx.commit()
    with Tx.open(engine) as check:
        assert check.one(_LATER_THAN, {"now": utcnow()}) == ("g-session",)


def test_the_connection_goes_back_to_the_pool(engine: Engine) -> None:
    with Tx.open(engine) as plain:
        plain.one(_LATER_THAN, {"now": utcnow()})
    with Tx.open(engine) as with_session:
        with_session.session.execute(select(_TOKENS.c.id)).all()
    with pytest.raises(RuntimeError), Tx.open(engine) as failed:
        failed.count(_INSERT, _row("g-failed", timedelta(minutes=1)))
        raise RuntimeError("a step failed")

    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    with Tx.open(engine) as check:
        assert check.one(_LATER_THAN, {"now": utcnow()}) is None


_EXPIRIES = Prepared(select(_TOKENS.c.grant_id, _TOKENS.c.access_expires_at).order_by(_TOKENS.c.grant_id))


def test_converted_rows_read_dates_back_as_the_orm_does(engine: Engine) -> None:
    with Tx.open(engine) as tx:
        tx.count(_INSERT, _row("g-a", timedelta(minutes=1)))
        tx.count(_INSERT, _row("g-b", timedelta(minutes=2)))
        tx.commit()
    with Session(engine) as session:
        orm = {row.grant_id: row.access_expires_at for row in session.execute(select(OAuthToken)).scalars()}
    with Tx.open(engine) as tx:
        raw = tx.one(_EXPIRIES, {})
        first = tx.converted(_EXPIRIES, {})
        rows = tx.converted_rows(_EXPIRIES, {})
    assert raw is not None and isinstance(raw[1], str)  # SQLite's driver gives the stored text
    assert first == ("g-a", orm["g-a"])
    assert rows == [("g-a", orm["g-a"]), ("g-b", orm["g-b"])]


def test_loaded_rows_are_orm_objects_as_the_loader_makes_them() -> None:
    """``keys.dbapi.loaded``: values readable as attributes and through pydantic, no pending
    changes (nothing for a session to write), usable before any session has configured
    the mappers."""
    from sqlalchemy import inspect

    from identity.models import Citizen
    from keys.dbapi import loaded

    citizen = loaded(Citizen, ["id", "public_id", "state"], [7, "c-7", "active"])
    assert (citizen.id, citizen.public_id, citizen.state) == (7, "c-7", "active")
    assert citizen.model_dump() == {"id": 7, "public_id": "c-7", "state": "active"}
    state = inspect(citizen)
    assert state.transient and not any(state.attrs[name].history.has_changes() for name in ("id", "state"))
