"""Authorization requests parked while the citizen logs in or gives consent.

Every login parks one request, reads it on the login page and again on resume, and
completes it once: prepared statements (``keys.dbapi``) on the caller's transaction, no
ORM objects loaded or flushed. What they hand out is a ``Parked`` value (building an ORM
object cost more than reading the row).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col

from keys.dbapi import Prepared, Tx
from keys.models import as_utc, utcnow

from .. import _secrets
from .models import AuthorizationRequest

LIFETIME = timedelta(minutes=15)


@dataclass(frozen=True, slots=True, kw_only=True)
class Parked:
    """A parked authorization request (an ``AuthorizationRequest`` row)."""

    id: int | None
    """Database id (None for one just parked: ``find`` it by ``public_id``)."""
    public_id: str
    """What the login and consent pages carry (``?request=``)."""
    client_id: str
    params_json: str
    """The request's parameters, a JSON list of pairs (``params``)."""
    created_at: datetime
    expires_at: datetime


_TABLE = AuthorizationRequest.__table__  # type: ignore[attr-defined]
_COLUMNS = ("public_id", "client_id", "params_json", "created_at", "expires_at")
_INSERT = Prepared(insert(_TABLE).values({name: bindparam(name) for name in _COLUMNS}))
# Still waiting: neither completed nor expired, decided in SQL.
_WAITING = Prepared(
    core_select(
        _TABLE.c.id, _TABLE.c.client_id, _TABLE.c.params_json, _TABLE.c.created_at, _TABLE.c.expires_at
    )
    .where(_TABLE.c.public_id == bindparam("public_id"))
    .where(_TABLE.c.completed_at.is_(None))
    .where(_TABLE.c.expires_at > bindparam("now"))
)
_COMPLETE = Prepared(
    update(_TABLE)
    .where(col(AuthorizationRequest.id) == bindparam("row_id"))
    .where(col(AuthorizationRequest.completed_at).is_(None))
    .values(completed_at=bindparam("now"))
)


def park(
    session: Session,
    client_id: str,
    params: list[tuple[str, str]],
    *,
    lifetime: timedelta = LIFETIME,
    now: datetime | None = None,
) -> Parked:
    """Park a request (committed); the value returned carries no ``id``: ``find`` it by
    its ``public_id``."""
    when = now or utcnow()
    row = Parked(
        id=None,
        public_id=_secrets.public_id("rq"),
        client_id=client_id,
        params_json=json.dumps(params),
        created_at=when,
        expires_at=when + lifetime,
    )
    tx = Tx(session)
    tx.count(_INSERT, {name: getattr(row, name) for name in _COLUMNS})
    tx.commit()
    return row


def find(session: Session, public_id: str | None, *, now: datetime | None = None) -> Parked | None:
    """A parked request still waiting (not expired, not completed)."""
    if not public_id or len(public_id) > 40:
        return None
    found = Tx(session).converted(_WAITING, {"public_id": public_id, "now": now or utcnow()})
    if found is None:
        return None
    row_id, client_id, params_json, created_at, expires_at = found
    return Parked(
        id=row_id,
        public_id=public_id,
        client_id=client_id,
        params_json=params_json,
        created_at=as_utc(created_at),
        expires_at=as_utc(expires_at),
    )


def params(row: Parked) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in json.loads(row.params_json)]


def complete(session: Session, row: Parked, *, commit: bool = True) -> bool:
    """Mark done once; a second resume of the same request does nothing. Commits unless
    ``commit`` is False: a resume leaves it to the commit that stores its code, one write
    transaction (and fsync) instead of two, and a resume that fails before then leaves the
    request to be resumed again."""
    tx = Tx(session)
    done = tx.count(_COMPLETE, {"row_id": row.id, "now": utcnow()}) == 1
    if commit:
        tx.commit()
    return done
