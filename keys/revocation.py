"""Revocation as one operation: mark the certificate, then publish a fresh CRL at once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from . import ca, crl
from .errors import RevocationRejected
from .keystore import KeyStore
from .models import CertificateRecord
from .pki import Pki


def revoke_certificate(
    session: Session,
    keystore: KeyStore,
    pki: Pki,
    serial: str,
    *,
    reason: ca.RevocationReason = ca.RevocationReason.UNSPECIFIED,
    at: datetime | None = None,
    actor: str = "system",
    crl_validity: timedelta = crl.DEFAULT_VALIDITY,
) -> CertificateRecord:
    """Revoke ``serial`` and publish its issuer's next CRL. OCSP sees it immediately."""
    record = ca.find(session, serial)
    if record.issuer not in (pki.root.name, pki.citizen_ca.name):
        raise RevocationRejected(f"certificate {record.serial} was not issued by this PKI")
    revoked = ca.revoke(session, serial, reason=reason, at=at, actor=actor)
    crl.publish(session, keystore, pki.issuer(revoked.issuer), validity=crl_validity)
    return revoked


def release_hold(
    session: Session,
    keystore: KeyStore,
    pki: Pki,
    serial: str,
    *,
    actor: str = "system",
    crl_validity: timedelta = crl.DEFAULT_VALIDITY,
) -> CertificateRecord:
    """Lift a suspension (``certificate_hold``) and publish the next CRL."""
    record = ca.release_hold(session, serial, actor=actor)
    crl.publish(session, keystore, pki.issuer(record.issuer), validity=crl_validity)
    return record
