"""Bearer tokens: issued by the token endpoint, checked by resource endpoints.

Tokens are random strings handed to the client; the database keeps only their hashes,
so a leaked database grants nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert
from sqlmodel import Session, select

from keys.dbapi import Prepared, Tx
from keys.models import as_utc, utcnow

from .. import _secrets
from ..errors import IdentityError
from .models import OAuthToken

ACCESS_TOKEN_LIFETIME = timedelta(minutes=10)
_COLUMNS = (
    "client_id",
    "citizen_id",
    "grant_id",
    "scope",
    "access_token_hash",
    "refresh_token_hash",
    "issued_at",
    "access_expires_at",
    "refresh_expires_at",
)
_INSERT = Prepared(
    insert(OAuthToken.__table__).values(  # type: ignore[attr-defined]
        {name: bindparam(name) for name in _COLUMNS}
    )
)


class InvalidToken(IdentityError):
    status = 401
    public = True
    slug = "invalid-token"
    title = "Invalid access token"


class InsufficientScope(IdentityError):
    status = 403
    public = True
    slug = "insufficient-scope"
    title = "Insufficient scope"


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenInfo:
    """What a valid access token grants."""

    client_id: str
    """The client it was issued to."""
    citizen_id: int | None
    """The citizen it acts for, or None for a client's own access."""
    scopes: frozenset[str]
    """Granted scopes."""
    grant_id: str
    """The grant the token belongs to."""
    expires_at: datetime
    """End of validity."""


def new_token_value() -> str:
    return secrets.token_urlsafe(32)


def store(
    tx: Tx,
    token: dict[str, Any],
    *,
    client_id: str,
    citizen_id: int | None,
    grant_id: str | None = None,
    refresh_lifetime: timedelta | None = None,
    now: datetime | None = None,
) -> None:
    """Save an Authlib token dict (written, not committed)."""
    when = now or utcnow()
    refresh = token.get("refresh_token")
    # A plain INSERT on the DBAPI connection (``prepared``): the ORM's unit of work (add + flush)
    # cost several times the statement, and nothing reads the row back in this request.
    tx.count(
        _INSERT,
        {
            "client_id": client_id,
            "citizen_id": citizen_id,
            "grant_id": grant_id or _secrets.public_id("g"),
            "scope": token.get("scope", ""),
            "access_token_hash": _secrets.digest(token["access_token"]),
            "refresh_token_hash": _secrets.digest(refresh) if refresh else None,
            "issued_at": when,
            "access_expires_at": when + timedelta(seconds=int(token["expires_in"])),
            "refresh_expires_at": when + refresh_lifetime if refresh and refresh_lifetime else None,
        },
    )


def check_bearer(
    session: Session, authorization: str | None, *, scope: str | None = None, now: datetime | None = None
) -> TokenInfo:
    """Validate ``Authorization: Bearer <token>``; ``InvalidToken``/``InsufficientScope`` if not."""
    when = now or utcnow()
    if not authorization or not authorization.lower().startswith("bearer "):
        raise InvalidToken("this endpoint needs an 'Authorization: Bearer <access token>' header")
    value = authorization[7:].strip()
    row = session.exec(
        select(OAuthToken).where(OAuthToken.access_token_hash == _secrets.digest(value))
    ).first()
    if row is None or row.revoked_at is not None or as_utc(row.access_expires_at) <= when:
        raise InvalidToken("the access token is unknown, expired or revoked")
    scopes = frozenset(row.scope.split())
    if scope is not None and scope not in scopes:
        raise InsufficientScope(f"the access token lacks the '{scope}' scope")
    return TokenInfo(
        grant_id=row.grant_id,
        client_id=row.client_id,
        citizen_id=row.citizen_id,
        scopes=scopes,
        expires_at=as_utc(row.access_expires_at),
    )
