"""Issuing and revoking certificates, crash safe.

Issuance follows one order so a crash can never reuse a serial or lose track of a
certificate: reserve the serial (unique in the database) and record the intent, commit,
sign, then store the certificate and commit again. A reservation that never completes
stays in the table and the OCSP responder answers for it as revoked (RFC 6960 2.2,
extended revoked definition).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from asn1crypto import x509
from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from . import audit
from ._x509 import build_certificate, random_serial, rfc4514, serial_hex
from .errors import CertificateNotFound, KeyServiceError, RevocationRejected
from .keystore import KeyAlgorithm, KeyStore
from .models import CertificateRecord, utcnow
from .profiles import Profile


class RevocationReason(StrEnum):
    """RFC 5280 CRLReason values that may be used (asn1crypto names)."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "key_compromise"
    CA_COMPROMISE = "ca_compromise"
    AFFILIATION_CHANGED = "affiliation_changed"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation_of_operation"
    CERTIFICATE_HOLD = "certificate_hold"
    PRIVILEGE_WITHDRAWN = "privilege_withdrawn"


class CertState(StrEnum):
    RESERVED = "reserved"
    ISSUED = "issued"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class Signer:
    """Who signs a certificate: for a self-signed root, its own new key and subject."""

    name: str
    """Issuer name recorded with the certificate, e.g. ``root-ca``."""
    key_id: str
    """Key store id of the signing key."""
    algorithm: KeyAlgorithm
    """Type of the signing key."""
    subject: x509.Name
    """Issuer distinguished name written into the certificate."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Issuer:
    """A CA that can sign: its name, key and certificate."""

    name: str
    """Short name used in URLs and the database, e.g. ``citizen-ca``."""
    key_id: str
    """Key store id of the CA's private key."""
    algorithm: KeyAlgorithm
    """Type of the CA key, which fixes the signature algorithm."""
    certificate: x509.Certificate
    """The CA certificate (self-signed for the root)."""

    @property
    def public_key_der(self) -> bytes:
        return bytes(self.certificate.public_key.dump())

    @property
    def subject(self) -> x509.Name:
        return self.certificate.subject

    @property
    def signer(self) -> Signer:
        return Signer(name=self.name, key_id=self.key_id, algorithm=self.algorithm, subject=self.subject)


@dataclass(frozen=True, slots=True, kw_only=True)
class IssueRequest:
    """Everything needed to issue one certificate."""

    profile: Profile
    """Which profile the certificate follows."""
    subject: x509.Name
    """Subject distinguished name."""
    public_key_der: bytes
    """DER SubjectPublicKeyInfo of the subject key."""
    not_before: datetime
    """Start of validity."""
    not_after: datetime
    """End of validity."""
    extensions: list[x509.Extension]
    """The profile's extensions, already built."""
    owner: str | None = None
    """Opaque reference to whoever the certificate belongs to (e.g. a citizen id)."""
    key_id: str | None = None
    """Key store id when the subject key is one of the service's own."""


def _reserve(session: Session, issuer_name: str, request: IssueRequest) -> tuple[int, int]:
    """Take a fresh serial and record the intent; committed before anything is signed."""
    for _ in range(5):
        serial = random_serial()
        record = CertificateRecord(
            serial=serial_hex(serial),
            issuer=issuer_name,
            profile=request.profile.value,
            subject=rfc4514(request.subject)[:512],
            owner=request.owner,
            key_id=request.key_id,
            state=CertState.RESERVED.value,
            not_before=request.not_before,
            not_after=request.not_after,
        )
        session.add(record)
        try:
            session.commit()
        except IntegrityError:  # serial collision: astronomically rare, but never reuse
            session.rollback()
            continue
        assert record.id is not None
        return serial, record.id
    raise KeyServiceError("could not reserve a unique serial number")


def issue(
    session: Session,
    keystore: KeyStore,
    signer: Signer,
    request: IssueRequest,
    *,
    actor: str = "system",
) -> CertificateRecord:
    """Issue one certificate. Owns its transactions: commits the reservation, then the result."""
    serial, record_id = _reserve(session, signer.name, request)
    certificate = build_certificate(
        keystore=keystore,
        issuer_key_id=signer.key_id,
        issuer_algorithm=signer.algorithm,
        issuer_name=signer.subject,
        subject_name=request.subject,
        subject_public_key_der=request.public_key_der,
        serial=serial,
        not_before=request.not_before,
        not_after=request.not_after,
        extensions=request.extensions,
    )
    record = session.get(CertificateRecord, record_id)
    assert record is not None
    record.der = certificate.dump()
    record.state = CertState.ISSUED.value
    session.add(record)
    audit.record(
        session,
        actor=actor,
        action="certificate.issued",
        target=record.serial,
        details={"issuer": signer.name, "profile": request.profile.value},
    )
    session.commit()
    session.refresh(record)
    return record


def find(session: Session, serial: str) -> CertificateRecord:
    """A certificate by serial (hex, case and ``0x``/colons ignored)."""
    cleaned = serial.lower().removeprefix("0x").replace(":", "").lstrip("0") or "0"
    record = session.exec(select(CertificateRecord).where(CertificateRecord.serial == cleaned)).first()
    if record is None:
        raise CertificateNotFound(f"no certificate with serial {serial}")
    return record


def _revocable(reason: RevocationReason) -> ColumnElement[bool]:
    """Valid certificates can be revoked; one on hold may also be revoked for good (RFC 5280 5.3.1)."""
    condition: ColumnElement[bool] = col(CertificateRecord.state) == CertState.ISSUED.value
    if reason is not RevocationReason.CERTIFICATE_HOLD:
        on_hold = and_(
            col(CertificateRecord.state) == CertState.REVOKED.value,
            col(CertificateRecord.revocation_reason) == RevocationReason.CERTIFICATE_HOLD.value,
        )
        condition = or_(condition, on_hold)
    return condition


def revoke(
    session: Session,
    serial: str,
    *,
    reason: RevocationReason = RevocationReason.UNSPECIFIED,
    at: datetime | None = None,
    actor: str = "system",
) -> CertificateRecord:
    """Mark a certificate revoked with one conditional update; the caller then reissues CRLs.

    Commits. Raises ``RevocationRejected`` when the certificate is not currently valid
    (a certificate on hold may still be revoked for good).
    """
    record = find(session, serial)
    when = at or utcnow()
    result = session.execute(
        update(CertificateRecord)
        .where(col(CertificateRecord.id) == record.id)
        .where(_revocable(RevocationReason(reason)))
        .values(
            state=CertState.REVOKED.value,
            revoked_at=when,
            revocation_reason=RevocationReason(reason).value,
            revision=CertificateRecord.revision + 1,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise RevocationRejected(f"certificate {record.serial} is {record.state}, not valid")
    audit.record(
        session,
        actor=actor,
        action="certificate.revoked",
        target=record.serial,
        details={"reason": RevocationReason(reason).value},
    )
    session.commit()
    session.refresh(record)
    return record


def release_hold(session: Session, serial: str, *, actor: str = "system") -> CertificateRecord:
    """Lift a ``certificate_hold`` (suspension); other revocations are final."""
    record = find(session, serial)
    result = session.execute(
        update(CertificateRecord)
        .where(col(CertificateRecord.id) == record.id)
        .where(col(CertificateRecord.state) == CertState.REVOKED.value)
        .where(col(CertificateRecord.revocation_reason) == RevocationReason.CERTIFICATE_HOLD.value)
        .values(
            state=CertState.ISSUED.value,
            revoked_at=None,
            revocation_reason=None,
            revision=CertificateRecord.revision + 1,
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise RevocationRejected(f"certificate {record.serial} is not on hold")
    audit.record(session, actor=actor, action="certificate.hold_released", target=record.serial)
    session.commit()
    session.refresh(record)
    return record
