"""Authorization requests parked while the citizen logs in or gives consent."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from keys.models import as_utc, utcnow

from .. import _secrets
from .models import AuthorizationRequest

LIFETIME = timedelta(minutes=15)


def park(
    session: Session,
    client_id: str,
    params: list[tuple[str, str]],
    *,
    lifetime: timedelta = LIFETIME,
    now: datetime | None = None,
) -> AuthorizationRequest:
    when = now or utcnow()
    row = AuthorizationRequest(
        public_id=_secrets.public_id("rq"),
        client_id=client_id,
        params_json=json.dumps(params),
        expires_at=when + lifetime,
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def find(
    session: Session, public_id: str | None, *, now: datetime | None = None
) -> AuthorizationRequest | None:
    """A parked request still waiting (not expired, not completed)."""
    if not public_id or len(public_id) > 40:
        return None
    row = session.exec(
        select(AuthorizationRequest).where(AuthorizationRequest.public_id == public_id)
    ).first()
    if row is None or row.completed_at is not None or as_utc(row.expires_at) <= (now or utcnow()):
        return None
    return row


def params(row: AuthorizationRequest) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in json.loads(row.params_json)]


def complete(session: Session, row: AuthorizationRequest) -> bool:
    """Mark done once; a second resume of the same request does nothing."""
    result = session.execute(
        update(AuthorizationRequest)
        .where(col(AuthorizationRequest.id) == row.id)
        .where(col(AuthorizationRequest.completed_at).is_(None))
        .values(completed_at=utcnow())
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
