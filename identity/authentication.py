"""Authentication: the citizen app (approval) or a smart card (Web eID) → an identity.

What comes out is an ``AuthenticatedIdentity``, the input of the OpenID Connect provider
and of the citizen's own login session: personal code, names, birth date, how (``amr``,
RFC 8176), how strongly (``acr``) and when, and the certificate used.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col

from keys import audit
from keys.dbapi import Prepared, Tx
from keys.models import as_utc, utcnow

from . import _secrets, approvals, citizens
from .errors import CitizenNotActive, WebEidRejected
from .models import ApprovalRequest, Citizen, LoginSession, WebEidNonce
from .personal_codes import PersonalCode, parse_personal_code
from .web_eid import WebEidIdentity

SESSION_LIFETIME = timedelta(hours=8)
_SESSION_COLUMNS = (
    "public_id",
    "token_hash",
    "citizen_id",
    "method",
    "amr",
    "acr",
    "certificate_serial",
    "auth_time",
    "expires_at",
)
NONCE_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticatedIdentity:
    """Who logged in, how, and when."""

    citizen_id: int
    """Database id of the citizen."""
    personal_code: PersonalCode
    """Validated personal code (``subject`` gives the TARA-style ``EE…``)."""
    given_name: str
    """Given names."""
    family_name: str
    """Family name."""
    method: str
    """``app`` (citizen app, approval protocol) or ``card`` (Web eID)."""
    amr: tuple[str, ...]
    """RFC 8176 methods: app → swk, pin, mfa; card → hwk, sc, pin, mfa."""
    acr: str
    """Level of assurance: ``substantial`` for the app, ``high`` for a card."""
    auth_time: datetime
    """When the citizen proved possession of the key."""
    certificate_serial: str
    """Serial of the authentication certificate used (hex)."""
    session_id: str | None = None
    """Public id of the login session it came from (OpenID Connect ``sid``), if any."""

    @property
    def birth_date(self) -> date | None:
        return self.personal_code.birth_date


APP_AMR = ("swk", "pin", "mfa")
CARD_AMR = ("hwk", "sc", "pin", "mfa")


def identity_of(citizen: Citizen, *, method: str, auth_time: datetime, serial: str) -> AuthenticatedIdentity:
    assert citizen.id is not None
    return _identity(
        citizen.id,
        citizens.code_of(citizen),
        citizen.given_name,
        citizen.family_name,
        method=method,
        auth_time=auth_time,
        serial=serial,
    )


def _identity(
    citizen_id: int,
    personal_code: PersonalCode,
    given_name: str,
    family_name: str,
    *,
    method: str,
    auth_time: datetime,
    serial: str,
    session_id: str | None = None,
) -> AuthenticatedIdentity:
    app = method == "app"
    return AuthenticatedIdentity(
        citizen_id=citizen_id,
        personal_code=personal_code,
        given_name=given_name,
        family_name=family_name,
        method=method,
        amr=APP_AMR if app else CARD_AMR,
        acr="substantial" if app else "high",
        auth_time=auth_time,
        certificate_serial=serial,
        session_id=session_id,
    )


# The citizen app.


def start_app_login(
    tx: Tx,
    *,
    personal_code: str,
    country: str = "EE",
    relying_party: str,
    binding: str,
    now: datetime | None = None,
) -> ApprovalRequest:
    """Open an ``auth`` approval for the citizen, bound to the browser's ``binding``. Does
    not commit."""
    citizen = citizens.read(tx, personal_code, country)
    if citizen.state != citizens.CitizenState.ACTIVE.value:
        raise CitizenNotActive(f"this account is {citizen.state}: it cannot log in")
    # What the app signs: a fresh random value, hashed, so every login signs something new.
    challenge = hashlib.sha256(b"eid-login-v1\x00" + secrets.token_bytes(32)).digest()
    return approvals.open_request(
        tx,
        citizen=citizen,
        kind=approvals.ApprovalKind.AUTH,
        hash_value=challenge,
        hash_algorithm="sha256",
        display_text=f"Log in to {relying_party}",
        binding=binding,
        now=now,
    )


def finish_app_login(
    tx: Tx, request: ApprovalRequest, *, now: datetime | None = None
) -> AuthenticatedIdentity | None:
    """The identity from a completed ``auth`` request, for its first taker only.

    Does not commit: taking the result counts once the caller commits, normally with the
    login session it opens (``open_session``), so that the two are one write transaction
    and a failure in between leaves the result to be taken again.
    """
    when = now or utcnow()
    if request.kind != approvals.ApprovalKind.AUTH.value or request.state != "completed":
        return None
    if not approvals.take_result(tx, request, now=when):
        return None
    citizen = citizens.read_by_id(tx, request.citizen_id)
    assert citizen is not None and request.answered_at is not None and request.certificate_serial
    return identity_of(
        citizen, method="app", auth_time=as_utc(request.answered_at), serial=request.certificate_serial
    )


# Web eID (smart cards).


def issue_web_eid_nonce(session: Session, *, binding: str, now: datetime | None = None) -> str:
    """A 256-bit nonce for the card to sign, single use, five minutes, bound to the browser."""
    when = now or utcnow()
    nonce = secrets.token_urlsafe(32)  # 256 bits, base64url
    session.add(
        WebEidNonce(
            nonce_hash=_secrets.digest(nonce),
            binding_hash=_secrets.digest(binding),
            expires_at=when + NONCE_LIFETIME,
        )
    )
    session.commit()
    return nonce


def consume_web_eid_nonce(
    session: Session, nonce: str, *, binding: str | None, now: datetime | None = None
) -> None:
    """Use the nonce up with one conditional update; refuse unknown, expired, reused or foreign."""
    when = now or utcnow()
    if binding is None:
        raise WebEidRejected("no challenge was issued to this browser")
    result = session.execute(
        update(WebEidNonce)
        .where(col(WebEidNonce.nonce_hash) == _secrets.digest(nonce))
        .where(col(WebEidNonce.binding_hash) == _secrets.digest(binding))
        .where(col(WebEidNonce.used_at).is_(None))
        .where(col(WebEidNonce.expires_at) > when)
        .values(used_at=when)
    )
    session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise WebEidRejected("the challenge nonce is unknown, expired, already used or from another browser")


def card_identity(
    session: Session, validated: WebEidIdentity, *, now: datetime | None = None
) -> AuthenticatedIdentity:
    """Map a validated Web eID token to a registered citizen (any trusted CA)."""
    when = now or utcnow()
    citizen = citizens.find(session, validated.personal_code, validated.country)
    if citizen.state != citizens.CitizenState.ACTIVE.value:
        raise CitizenNotActive(f"this account is {citizen.state}: it cannot log in")
    return identity_of(citizen, method="card", auth_time=when, serial=validated.serial)


# Login sessions (this service's own; OpenID Connect builds on them).


_INSERT_SESSION = Prepared(
    insert(LoginSession.__table__).values(  # type: ignore[attr-defined]
        {name: bindparam(name) for name in _SESSION_COLUMNS}
    )
)


def open_session(tx: Tx, identity: AuthenticatedIdentity, *, now: datetime | None = None) -> str:
    """Create a login session; return its secret token (only the hash is stored). Does not
    commit: the caller commits it with the result it was opened from."""
    when = now or utcnow()
    token = _secrets.token()
    tx.count(
        _INSERT_SESSION,
        {
            "public_id": _secrets.public_id("s"),
            "token_hash": _secrets.digest(token),
            "citizen_id": identity.citizen_id,
            "method": identity.method,
            "amr": " ".join(identity.amr),
            "acr": identity.acr,
            "certificate_serial": identity.certificate_serial,
            "auth_time": identity.auth_time,
            "expires_at": when + SESSION_LIFETIME,
        },
    )
    method = "the citizen app" if identity.method == "app" else "an ID card"
    citizens.note_activity_in(tx, identity.citizen_id, "login", f"Logged in with {method}")
    audit.record_in(tx, actor="citizen", action=f"login.{identity.method}", target=str(identity.citizen_id))
    return token


# The session and its citizen in one read, the session's validity decided in SQL: every
# authorization request and every resume asks it.
_SESSION_IDENTITY = Prepared(
    core_select(
        col(LoginSession.public_id),
        col(LoginSession.method),
        col(LoginSession.auth_time),
        col(LoginSession.certificate_serial),
        col(Citizen.id),
        col(Citizen.country),
        col(Citizen.personal_code),
        col(Citizen.given_name),
        col(Citizen.family_name),
    )
    .join(Citizen, col(Citizen.id) == col(LoginSession.citizen_id))
    .where(col(LoginSession.token_hash) == bindparam("token_hash"))
    .where(col(LoginSession.ended_at).is_(None))
    .where(col(LoginSession.expires_at) > bindparam("now"))
    .where(col(Citizen.state) == citizens.CitizenState.ACTIVE.value)
)


def session_identity(
    session: Session, token: str | None, *, now: datetime | None = None
) -> AuthenticatedIdentity | None:
    """The identity behind a session token, or None if absent, expired or ended (or its
    citizen no longer active)."""
    if not token:
        return None
    row = Tx(session).converted(
        _SESSION_IDENTITY, {"token_hash": _secrets.digest(token), "now": now or utcnow()}
    )
    if row is None:
        return None
    public_id, method, auth_time, serial, citizen_id, country, code, given, family = row
    return _identity(
        citizen_id,
        parse_personal_code(code, country),
        given,
        family,
        method=method,
        auth_time=as_utc(auth_time),
        serial=serial,
        session_id=public_id,
    )


def end_session(session: Session, token: str | None, *, now: datetime | None = None) -> None:
    if token:
        session.execute(
            update(LoginSession)
            .where(col(LoginSession.token_hash) == _secrets.digest(token))
            .values(ended_at=now or utcnow())
        )
        session.commit()
