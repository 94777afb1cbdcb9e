"""The citizen registry: registration by an officer, activation codes, states.

States: ``registered`` (no certificates yet), ``active`` (enrolled), ``suspended``
(certificates on hold), ``revoked`` (certificates revoked; a new enrolment needs a new
activation code).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from keys import audit
from keys.ca import CertState, RevocationReason
from keys.dbapi import Prepared, Tx, loaded
from keys.keystore import KeyStore
from keys.models import utcnow
from keys.pki import Pki
from keys.revocation import release_hold, revoke_certificate

from . import _secrets
from .errors import CitizenExists, CitizenNotFound, CitizenStateRejected, InvalidName
from .models import ActivationCode, Activity, Citizen, Device
from .personal_codes import PersonalCode, parse_personal_code

ACTIVATION_LIFETIME = timedelta(days=7)
MAX_NAME = 200


class CitizenState(StrEnum):
    REGISTERED = "registered"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    """A newly registered citizen and the activation code to hand them (shown once)."""

    citizen: Citizen
    """The stored citizen."""
    activation_code: str
    """The one-time code, in clear; only its hash is stored."""
    expires_at: datetime
    """When the code stops working."""


def clean_name(value: str, field: str) -> str:
    """NFC-normalise a name and refuse control characters and separators we use in CN."""
    name = unicodedata.normalize("NFC", value).strip()
    if not name:
        raise InvalidName(f"{field} must not be empty")
    if len(name) > MAX_NAME:
        raise InvalidName(f"{field} is longer than {MAX_NAME} characters")
    for char in name:
        category = unicodedata.category(char)
        if category.startswith("C") or char == ",":
            raise InvalidName(f"{field} contains a character that is not allowed: {char!r}")
    return name


def code_of(citizen: Citizen) -> PersonalCode:
    return parse_personal_code(citizen.personal_code, citizen.country)


def find(session: Session, personal_code: str, country: str = "EE") -> Citizen:
    code = parse_personal_code(personal_code, country)
    citizen = session.exec(
        select(Citizen).where(Citizen.country == code.country, Citizen.personal_code == code.code)
    ).first()
    if citizen is None:
        raise CitizenNotFound("no citizen is registered with that personal code")
    return citizen


_CITIZEN = Citizen.__table__  # type: ignore[attr-defined]
_CITIZEN_NAMES = tuple(column.name for column in _CITIZEN.columns)
_BY_CODE = Prepared(
    core_select(*_CITIZEN.columns)
    .where(_CITIZEN.c.country == bindparam("country"))
    .where(_CITIZEN.c.personal_code == bindparam("code"))
)
_BY_ID = Prepared(core_select(*_CITIZEN.columns).where(_CITIZEN.c.id == bindparam("citizen_id")))


def read(tx: Tx, personal_code: str, country: str = "EE") -> Citizen:
    """``find`` for callers that change nothing (a login): one prepared read, and the
    ``Citizen`` returned is a plain value in no session."""
    code = parse_personal_code(personal_code, country)
    found = tx.converted(_BY_CODE, {"country": code.country, "code": code.code})
    if found is None:
        raise CitizenNotFound("no citizen is registered with that personal code")
    return _citizen(found)


def read_by_id(tx: Tx, citizen_id: int) -> Citizen | None:
    """A citizen by database id, as ``read`` gives it."""
    found = tx.converted(_BY_ID, {"citizen_id": citizen_id})
    return None if found is None else _citizen(found)


def _citizen(row: tuple[object, ...]) -> Citizen:
    return loaded(Citizen, _CITIZEN_NAMES, row)


def _new_activation_code(
    session: Session, citizen: Citizen, *, actor: str, now: datetime
) -> tuple[str, datetime]:
    assert citizen.id is not None
    code = _secrets.human_code()
    expires = now + ACTIVATION_LIFETIME
    session.add(
        ActivationCode(
            citizen_id=citizen.id,
            code_hash=_secrets.digest(code),
            expires_at=expires,
            created_by=actor,
        )
    )
    return code, expires


def register(
    session: Session,
    *,
    personal_code: str,
    given_name: str,
    family_name: str,
    country: str = "EE",
    actor: str,
    now: datetime | None = None,
) -> Registration:
    """Register a citizen and create their first activation code. Commits."""
    when = now or utcnow()
    code = parse_personal_code(personal_code, country)
    citizen = Citizen(
        public_id=_secrets.public_id("c"),
        country=code.country,
        personal_code=code.code,
        given_name=clean_name(given_name, "given name"),
        family_name=clean_name(family_name, "family name"),
        state=CitizenState.REGISTERED.value,
    )
    session.add(citizen)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise CitizenExists("a citizen with that personal code is already registered") from None
    activation, expires = _new_activation_code(session, citizen, actor=actor, now=when)
    audit.record(session, actor=actor, action="citizen.registered", target=citizen.public_id)
    session.commit()
    session.refresh(citizen)
    return Registration(citizen=citizen, activation_code=activation, expires_at=expires)


def issue_activation_code(
    session: Session, citizen: Citizen, *, actor: str, now: datetime | None = None
) -> Registration:
    """A new activation code (re-enrolment after a lost device). Earlier unused codes lapse."""
    when = now or utcnow()
    session.execute(
        update(ActivationCode)
        .where(col(ActivationCode.citizen_id) == citizen.id)
        .where(col(ActivationCode.used_at).is_(None))
        .values(expires_at=when)
    )
    code, expires = _new_activation_code(session, citizen, actor=actor, now=when)
    audit.record(session, actor=actor, action="citizen.activation_code", target=citizen.public_id)
    session.commit()
    return Registration(citizen=citizen, activation_code=code, expires_at=expires)


def set_state(session: Session, citizen: Citizen, state: CitizenState, *, actor: str) -> Citizen:
    """Change the state only; the caller handles certificates. Commits."""
    citizen.state = state.value
    citizen.updated_at = utcnow()
    session.add(citizen)
    audit.record(session, actor=actor, action=f"citizen.{state.value}", target=citizen.public_id)
    session.commit()
    session.refresh(citizen)
    return citizen


def change_state(
    session: Session, keystore: KeyStore, pki: Pki, citizen: Citizen, state: CitizenState, *, actor: str
) -> Citizen:
    """An officer's decision. Suspension puts certificates on hold, reactivation lifts the
    hold, revocation revokes them for good (re-enrolment then needs a new activation code)."""
    from .enrolment import citizen_certificates

    current = CitizenState(citizen.state)
    if (
        state is CitizenState.REGISTERED
        or current is CitizenState.REVOKED
        and state is not CitizenState.REVOKED
    ):
        raise CitizenStateRejected(f"a {current.value} citizen cannot become {state.value}")
    if state is CitizenState.ACTIVE and current is not CitizenState.SUSPENDED:
        raise CitizenStateRejected("only a suspended citizen can be reactivated; others enrol")
    for record in citizen_certificates(session, citizen):
        on_hold = record.revocation_reason == RevocationReason.CERTIFICATE_HOLD.value
        if state is CitizenState.SUSPENDED and record.state == CertState.ISSUED.value:
            revoke_certificate(
                session, keystore, pki, record.serial, reason=RevocationReason.CERTIFICATE_HOLD, actor=actor
            )
        elif state is CitizenState.ACTIVE and on_hold:
            release_hold(session, keystore, pki, record.serial, actor=actor)
        elif state is CitizenState.REVOKED and (record.state == CertState.ISSUED.value or on_hold):
            revoke_certificate(
                session,
                keystore,
                pki,
                record.serial,
                reason=RevocationReason.PRIVILEGE_WITHDRAWN,
                actor=actor,
            )
    if state is CitizenState.REVOKED:
        session.execute(update(Device).where(col(Device.citizen_id) == citizen.id).values(active=False))
    return set_state(session, citizen, state, actor=actor)


_INSERT_ACTIVITY = Prepared(
    insert(Activity.__table__).values(  # type: ignore[attr-defined]
        {name: bindparam(name) for name in ("citizen_id", "at", "kind", "summary")}
    )
)


def note_activity(session: Session, citizen_id: int, kind: str, summary: str) -> None:
    """Add a line to what the citizen sees in their portal (flushed, not committed). An ORM
    object on purpose: the signature counter of ``api.observability`` counts "signature"
    lines as their session commits them."""
    session.add(Activity(citizen_id=citizen_id, kind=kind, summary=summary[:300]))


def note_activity_in(tx: Tx, citizen_id: int, kind: str, summary: str) -> None:
    """``note_activity`` as one prepared statement, for a login (it writes one every time;
    logins are counted where their codes are issued, not from these lines)."""
    tx.count(
        _INSERT_ACTIVITY, {"citizen_id": citizen_id, "at": utcnow(), "kind": kind, "summary": summary[:300]}
    )


def recent_activity(session: Session, citizen_id: int, limit: int = 50) -> list[Activity]:
    return list(
        session.exec(
            select(Activity)
            .where(Activity.citizen_id == citizen_id)
            .order_by(col(Activity.at).desc(), col(Activity.id).desc())
            .limit(limit)
        )
    )
