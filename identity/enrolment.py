"""Enrolment: an activation code becomes two certificates and a registered device.

1. ``start`` consumes the activation code (single use) and returns a challenge.
2. ``complete`` checks a proof of possession for each of the three keys the app made
   (authentication, signing, device), revokes the citizen's previous certificates,
   issues the new ones and registers the device.

The proof for purpose ``p`` is a signature over ``b"eid-pop-v1\\0" + p + b"\\0" + challenge``
(docs/protocol.md).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update
from sqlmodel import Session, col, select

from keys import audit
from keys.ca import CertState, RevocationReason
from keys.errors import CertificateRequestRejected
from keys.issuance import Purpose, issue_citizen_certificate, load_citizen_key, verify_possession
from keys.keystore import KeyStore
from keys.models import CertificateRecord, as_utc, utcnow
from keys.pki import Pki
from keys.profiles import CitizenSubject, Profile
from keys.revocation import revoke_certificate

from . import _secrets
from .citizens import CitizenState, note_activity
from .errors import ActivationRejected
from .models import ActivationCode, Citizen, Device, Enrolment

ENROLMENT_LIFETIME = timedelta(minutes=10)
_REJECTED = "the activation code is unknown, expired or already used"


def pop_message(purpose: str, challenge: bytes) -> bytes:
    """The bytes a key signs to prove possession at enrolment."""
    return b"eid-pop-v1\x00" + purpose.encode("ascii") + b"\x00" + challenge


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySubmission:
    """A public key from the app with its proof of possession."""

    public_key: bytes
    """DER SubjectPublicKeyInfo."""
    proof: bytes
    """Signature over ``pop_message(purpose, challenge)``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrolled:
    """What the app receives at the end of enrolment."""

    citizen: Citizen
    """The citizen, now active."""
    device_id: str
    """Identifier of the registered device (``kid`` of its request tokens)."""
    auth_certificate: bytes
    """DER authentication certificate."""
    sign_certificate: bytes
    """DER signing certificate."""
    chain: tuple[bytes, ...]
    """Citizen CA and root certificates (DER), issuer first."""


def start(
    session: Session, activation_code: str, *, now: datetime | None = None
) -> tuple[Enrolment, Citizen]:
    """Consume the activation code with one conditional update and open an enrolment. Commits."""
    when = now or utcnow()
    code_hash = _secrets.digest(_secrets.normalise_human_code(activation_code))
    row = session.exec(select(ActivationCode).where(ActivationCode.code_hash == code_hash)).first()
    if row is None:
        raise ActivationRejected(_REJECTED)
    result = session.execute(
        update(ActivationCode)
        .where(col(ActivationCode.id) == row.id)
        .where(col(ActivationCode.used_at).is_(None))
        .where(col(ActivationCode.expires_at) > when)
        .values(used_at=when)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise ActivationRejected(_REJECTED)
    citizen = session.get(Citizen, row.citizen_id)
    assert citizen is not None and citizen.id is not None
    enrolment = Enrolment(
        public_id=_secrets.public_id("en"),
        citizen_id=citizen.id,
        challenge=secrets.token_bytes(32),
        expires_at=when + ENROLMENT_LIFETIME,
    )
    session.add(enrolment)
    audit.record(session, actor="citizen app", action="enrolment.started", target=citizen.public_id)
    session.commit()
    session.refresh(enrolment)
    return enrolment, citizen


def _check_keys(
    enrolment: Enrolment, auth: KeySubmission, sign: KeySubmission, device: KeySubmission
) -> None:
    keys = {"auth": auth, "sign": sign, "device": device}
    if len({k.public_key for k in keys.values()}) != 3:
        raise ActivationRejected("the authentication, signing and device keys must be three different keys")
    device_key = load_citizen_key(device.public_key)
    if not isinstance(device_key, ec.EllipticCurvePublicKey) or device_key.curve.name != "secp256r1":
        raise ActivationRejected("the device key must be an EC P-256 key")
    for purpose, submission in keys.items():
        try:
            verify_possession(
                submission.public_key, pop_message(purpose, enrolment.challenge), submission.proof
            )
        except CertificateRequestRejected as exc:
            raise ActivationRejected(f"{purpose} key: {exc}") from None


def complete(
    session: Session,
    keystore: KeyStore,
    pki: Pki,
    enrolment_id: str,
    *,
    auth: KeySubmission,
    sign: KeySubmission,
    device: KeySubmission,
    now: datetime | None = None,
) -> Enrolled:
    """Check the proofs, consume the enrolment, replace the citizen's credentials. Commits."""
    when = now or utcnow()
    enrolment = session.exec(select(Enrolment).where(Enrolment.public_id == enrolment_id)).first()
    if enrolment is None or enrolment.completed_at is not None or as_utc(enrolment.expires_at) <= when:
        raise ActivationRejected("this enrolment is unknown, expired or already completed")
    _check_keys(enrolment, auth, sign, device)
    consumed = session.execute(
        update(Enrolment)
        .where(col(Enrolment.id) == enrolment.id)
        .where(col(Enrolment.completed_at).is_(None))
        .values(completed_at=when)
    )
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise ActivationRejected("this enrolment is already completed")
    session.commit()

    citizen = session.get(Citizen, enrolment.citizen_id)
    assert citizen is not None and citizen.id is not None
    _retire_credentials(session, keystore, pki, citizen, reason=RevocationReason.SUPERSEDED)

    subject = CitizenSubject(
        country=citizen.country,
        given_name=citizen.given_name,
        family_name=citizen.family_name,
        personal_code=citizen.personal_code,
    )
    issued = {
        purpose: issue_citizen_certificate(
            session,
            keystore,
            pki,
            subject=subject,
            purpose=purpose,
            public_key_der=submission.public_key,
            owner=citizen.public_id,
            now=when,
            actor="enrolment",
        )
        for purpose, submission in ((Purpose.AUTHENTICATION, auth), (Purpose.SIGNING, sign))
    }
    device_row = Device(
        public_id=_secrets.public_id("d"),
        citizen_id=citizen.id,
        public_key=device.public_key,
        auth_serial=issued[Purpose.AUTHENTICATION].serial,
        sign_serial=issued[Purpose.SIGNING].serial,
    )
    session.add(device_row)
    citizen.state = CitizenState.ACTIVE.value
    citizen.updated_at = when
    session.add(citizen)
    note_activity(session, citizen.id, "enrolment", "New certificates issued to a new device")
    audit.record(session, actor="enrolment", action="enrolment.completed", target=citizen.public_id)
    session.commit()
    session.refresh(citizen)
    auth_der, sign_der = issued[Purpose.AUTHENTICATION].der, issued[Purpose.SIGNING].der
    assert auth_der is not None and sign_der is not None
    return Enrolled(
        citizen=citizen,
        device_id=device_row.public_id,
        auth_certificate=auth_der,
        sign_certificate=sign_der,
        chain=(pki.citizen_ca.certificate.dump(), pki.root.certificate.dump()),
    )


def citizen_certificates(
    session: Session, citizen: Citizen, *, only_valid: bool = False
) -> list[CertificateRecord]:
    query = select(CertificateRecord).where(
        CertificateRecord.owner == citizen.public_id,
        col(CertificateRecord.profile).in_([Profile.CITIZEN_AUTH.value, Profile.CITIZEN_SIGN.value]),
    )
    if only_valid:
        query = query.where(CertificateRecord.state == CertState.ISSUED.value)
    return list(session.exec(query.order_by(col(CertificateRecord.id).desc())))


def _retire_credentials(
    session: Session, keystore: KeyStore, pki: Pki, citizen: Citizen, *, reason: RevocationReason
) -> None:
    """Revoke every live certificate of the citizen and disable their devices."""
    for record in citizen_certificates(session, citizen):
        if record.state == CertState.ISSUED.value or record.revocation_reason == "certificate_hold":
            revoke_certificate(session, keystore, pki, record.serial, reason=reason, actor="enrolment")
    session.execute(update(Device).where(col(Device.citizen_id) == citizen.id).values(active=False))
    session.commit()
