"""What the OpenID Connect grants store and look up: codes, tokens, grants, consents.

Single-use things are consumed with one conditional update whose row count is checked:
a code (at most 60 s), a refresh token (rotated on every use). Reusing either revokes
every token of its grant, as RFC 9700 asks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from keys.dbapi import Prepared, Tx, loaded
from keys.models import as_utc, utcnow

from .. import _secrets
from ..models import Citizen
from .models import AuthorizationCode, Consent, OAuthToken

CODE_LIFETIME = timedelta(seconds=60)
REFRESH_LIFETIME = timedelta(days=30)

# Statements of the token endpoint, built once with bind parameters (building them per
# request cost more than running them); the UPDATEs on the tables, so that the ORM does not
# evaluate their WHERE clauses against the session's objects.
_CODES = AuthorizationCode.__table__  # type: ignore[attr-defined]
_TOKENS = OAuthToken.__table__  # type: ignore[attr-defined]
# Codes are written on every resume and taken on every code exchange: prepared statements,
# the code handed to Authlib a plain ``AuthorizationCode`` value in no session.
_CODE_NAMES = tuple(column.name for column in _CODES.columns)
_CODE_INSERTED = tuple(name for name in _CODE_NAMES if name != "id")
_INSERT_CODE = Prepared(insert(_CODES).values({name: bindparam(name) for name in _CODE_INSERTED}))
_CODE_BY_HASH = Prepared(core_select(*_CODES.columns).where(_CODES.c.code_hash == bindparam("code_hash")))
_CODE_USED = Prepared(core_select(_CODES.c.used_at.is_not(None)).where(_CODES.c.id == bindparam("code_id")))
# The refresh grant's statements run on the DBAPI connection (``prepared``); its dates are
# compared in SQL, so the row comes back as plain values.
_REFRESH_STATE = Prepared(
    core_select(
        _TOKENS.c.id,
        _TOKENS.c.client_id,
        _TOKENS.c.citizen_id,
        _TOKENS.c.grant_id,
        _TOKENS.c.scope,
        _TOKENS.c.revoked_at.is_not(None),
        _TOKENS.c.refreshed_at.is_not(None),
        _TOKENS.c.refresh_expires_at <= bindparam("now"),
    ).where(_TOKENS.c.refresh_token_hash == bindparam("refresh_hash"))
)
_REVOKE_GRANT = Prepared(
    update(_TOKENS)
    .where(_TOKENS.c.grant_id == bindparam("grant_id"))
    .where(_TOKENS.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)
_TAKE_CODE = Prepared(
    update(_CODES)
    .where(_CODES.c.id == bindparam("code_id"))
    .where(_CODES.c.used_at.is_(None))
    .where(_CODES.c.expires_at > bindparam("now"))
    .values(used_at=bindparam("now"))
)
_ROTATE = Prepared(
    update(_TOKENS)
    .where(_TOKENS.c.id == bindparam("token_id"))
    .where(_TOKENS.c.refreshed_at.is_(None))
    .values(refreshed_at=bindparam("now"))
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshToken:
    """A refresh token that may be used: known, not revoked, not rotated, not expired."""

    id: int
    """Database id of its row."""
    client_id: str
    """The client it was issued to."""
    citizen_id: int | None
    """The citizen it acts for."""
    grant_id: str
    """Its grant: reuse revokes every token of it."""
    scope: str
    """Granted scopes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Owner:
    """The citizen a code or token acts for, with how and when they logged in."""

    citizen_id: int
    """Database id of the citizen."""
    sid: str
    """The login session (OpenID Connect ``sid``)."""
    auth_time: datetime
    """When the citizen authenticated."""
    acr: str
    """Level of assurance of that authentication."""
    amr: tuple[str, ...]
    """Methods of that authentication."""

    def get_user_id(self) -> int:
        return self.citizen_id


class CodeRecord:
    """An ``AuthorizationCode`` row with the accessors Authlib's grants call."""

    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return int(as_utc(self.row.auth_time).timestamp())

    def get_acr(self) -> str:
        return self.row.acr

    def get_amr(self) -> list[str]:
        return self.row.amr.split()

    @property
    def owner(self) -> Owner:
        return Owner(
            citizen_id=self.row.citizen_id,
            sid=self.row.sid,
            auth_time=as_utc(self.row.auth_time),
            acr=self.row.acr,
            amr=tuple(self.row.amr.split()),
        )

    @property
    def requested_claims(self) -> dict[str, Any]:
        return dict(json.loads(self.row.claims_json)) if self.row.claims_json else {}


def save_code(
    session: Session,
    code: str,
    *,
    client_id: str,
    owner: Owner,
    redirect_uri: str,
    scope: str,
    nonce: str | None,
    code_challenge: str | None,
    code_challenge_method: str | None,
    claims: dict[str, Any] | None,
    now: datetime | None = None,
) -> None:
    """Store a new code (committed, with whatever else the session's transaction holds)."""
    when = now or utcnow()
    row = {
        "code_hash": _secrets.digest(code),
        "client_id": client_id,
        "citizen_id": owner.citizen_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": code_challenge_method,
        "claims_json": json.dumps(claims) if claims else None,
        "auth_time": owner.auth_time,
        "acr": owner.acr,
        "amr": " ".join(owner.amr),
        "sid": owner.sid,
        "grant_id": _secrets.public_id("g"),
        "created_at": when,
        "expires_at": when + CODE_LIFETIME,
        "used_at": None,
    }
    Tx(session).count(_INSERT_CODE, row)  # the values, not an ORM object: building one cost more
    session.commit()


def consume_code(tx: Tx, code: str, client_id: str, *, now: datetime | None = None) -> CodeRecord | None:
    """Take a code once. A second use revokes everything issued from it and returns None.

    Does not commit: the caller commits a successful take together with the tokens it
    issues (``OAuthServer.save_token``), and a refusal with the revocation it wrote (the
    token route commits whatever a refused request wrote), so a grant is one write
    transaction. The conditional UPDATE holds the row (or, on SQLite, the database) until
    then, so a concurrent second use waits and then finds the code used.
    """
    when = now or utcnow()
    found = tx.converted(_CODE_BY_HASH, {"code_hash": _secrets.digest(code)})
    if found is None:
        return None
    row = loaded(AuthorizationCode, _CODE_NAMES, found)
    if row.client_id != client_id:
        return None
    if tx.count(_TAKE_CODE, {"code_id": row.id, "now": when}) != 1:
        # Used by someone (then everything issued from it is revoked), or expired.
        used = tx.one(_CODE_USED, {"code_id": row.id})
        if used is not None and used[0]:
            tx.count(_REVOKE_GRANT, {"grant_id": row.grant_id, "now": when})
        return None
    row.used_at = when
    return CodeRecord(row)


def revoke_grant(session: Session, grant_id: str, *, now: datetime | None = None) -> int:
    """Revoke every token of a grant; returns how many. Commits."""
    count = Tx(session).count(_REVOKE_GRANT, {"grant_id": grant_id, "now": now or utcnow()})
    session.commit()
    return count


def find_token(session: Session, value: str, kind: str) -> OAuthToken | None:
    column = OAuthToken.refresh_token_hash if kind == "refresh_token" else OAuthToken.access_token_hash
    return session.exec(select(OAuthToken).where(column == _secrets.digest(value))).first()


def revoke_token(session: Session, row: OAuthToken, *, now: datetime | None = None) -> None:
    session.execute(update(OAuthToken).where(col(OAuthToken.id) == row.id).values(revoked_at=now or utcnow()))
    session.commit()


def usable_refresh_token(tx: Tx, value: str, *, now: datetime | None = None) -> RefreshToken | None:
    """The refresh token ``value`` if it may be used; None if unknown, revoked or expired.

    A token already rotated away came back: someone holds a copy, so its whole grant is
    revoked and None returned (the token route commits a refused request's writes too).
    """
    when = now or utcnow()
    row = tx.one(_REFRESH_STATE, {"refresh_hash": _secrets.digest(value), "now": when})
    if row is None:
        return None
    token_id, client_id, citizen_id, grant_id, scope, revoked, rotated, expired = row
    if revoked:
        return None
    if rotated:
        tx.count(_REVOKE_GRANT, {"grant_id": grant_id, "now": when})
        return None
    if expired:
        return None
    return RefreshToken(
        id=token_id, client_id=client_id, citizen_id=citizen_id, grant_id=grant_id, scope=scope
    )


def rotate_refresh_token(tx: Tx, token: RefreshToken, *, now: datetime | None = None) -> bool:
    """Mark a refresh token used; False (and the grant revoked) if someone used it first.

    Does not commit: the token route commits the rotation with the new token (or the
    revocation with the refusal), one write transaction per refresh, or per group of
    refreshes (``api.group_commit``). Until then the
    conditional UPDATE holds the row (on SQLite, the database), so a concurrent use of the
    same token waits, then matches no row and revokes the grant.
    """
    when = now or utcnow()
    if tx.count(_ROTATE, {"token_id": token.id, "now": when}) != 1:
        tx.count(_REVOKE_GRANT, {"grant_id": token.grant_id, "now": when})
        return False
    return True


def has_consent(session: Session, citizen_id: int, client_id: str, scope: str) -> bool:
    wanted = set(scope.split())
    for consent in session.exec(
        select(Consent)
        .where(Consent.citizen_id == citizen_id)
        .where(Consent.client_id == client_id)
        .where(col(Consent.withdrawn_at).is_(None))
    ):
        if wanted <= set(consent.scope.split()):
            return True
    return False


def give_consent(session: Session, citizen_id: int, client_id: str, scope: str) -> None:
    session.add(Consent(citizen_id=citizen_id, client_id=client_id, scope=scope))
    session.commit()


_CITIZEN = Citizen.__table__  # type: ignore[attr-defined]
_CITIZEN_BY_ID = Prepared(
    core_select(
        _CITIZEN.c.public_id,
        _CITIZEN.c.country,
        _CITIZEN.c.personal_code,
        _CITIZEN.c.given_name,
        _CITIZEN.c.family_name,
        _CITIZEN.c.state,
    ).where(_CITIZEN.c.id == bindparam("citizen_id"))
)


def citizen_for_claims(tx: Tx, citizen_id: int) -> Citizen:
    """The citizen's names and code for an ID token: a detached copy (no dates), not for writing.

    One prepared statement: the ORM's identity-map load cost about as much as the claims."""
    row = tx.one(_CITIZEN_BY_ID, {"citizen_id": citizen_id})
    assert row is not None  # codes and tokens reference their citizen (foreign key)
    public_id, country, personal_code, given_name, family_name, state = row
    return Citizen(
        id=citizen_id,
        public_id=public_id,
        country=country,
        personal_code=personal_code,
        given_name=given_name,
        family_name=family_name,
        state=state,
    )


def citizen_of(session: Session, owner: Owner | int) -> Citizen:
    citizen = session.get(Citizen, owner if isinstance(owner, int) else owner.citizen_id)
    assert citizen is not None
    return citizen


def consents_of(session: Session, citizen_id: int) -> list[Consent]:
    return list(
        session.exec(
            select(Consent)
            .where(Consent.citizen_id == citizen_id)
            .where(col(Consent.withdrawn_at).is_(None))
            .order_by(col(Consent.granted_at).desc())
        )
    )


def withdraw_consent(
    session: Session, citizen_id: int, client_id: str, *, now: datetime | None = None
) -> int:
    """Withdraw every consent the citizen gave the client and revoke its tokens for them."""
    when = now or utcnow()
    result = session.execute(
        update(Consent)
        .where(col(Consent.citizen_id) == citizen_id)
        .where(col(Consent.client_id) == client_id)
        .where(col(Consent.withdrawn_at).is_(None))
        .values(withdrawn_at=when)
    )
    session.execute(
        update(OAuthToken)
        .where(col(OAuthToken.citizen_id) == citizen_id)
        .where(col(OAuthToken.client_id) == client_id)
        .where(col(OAuthToken.revoked_at).is_(None))
        .values(revoked_at=when)
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def requested_claims(session: Session, grant_id: str) -> dict[str, Any]:
    """The ``claims`` request parameter of the authorization that started a grant."""
    row = session.exec(select(AuthorizationCode).where(AuthorizationCode.grant_id == grant_id)).first()
    return dict(json.loads(row.claims_json)) if row is not None and row.claims_json else {}
