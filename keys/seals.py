"""Organisations' e-seal keys and certificates (EN 319 412-3).

An organisation's seal key is one of the service's own keys (file key store or HSM); its
certificate comes from the issuing CA, so our OCSP responder and CRL answer for it like
for a citizen's. The certificate record's ``owner`` names the OAuth client that may seal
with it (``client:<client_id>``): a relying party seals through the API with a token of
its own, and no person approves.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from .ca import CertState, IssueRequest, issue
from .errors import CertificateRequestRejected
from .keystore import KeyAlgorithm, KeyStore
from .models import CertificateRecord, as_utc, utcnow
from .pki import Pki
from .profiles import OrganisationSubject, Profile, extensions_for

SEAL_CERT_LIFETIME = timedelta(days=3 * 365)
# EN 319 412-1 legal person identifier: type of register, country, "-", the number.
_IDENTIFIER = re.compile(r"(VAT|NTR|PSD|LEI)[A-Z]{2}-[A-Za-z0-9./:-]{1,60}")


def owner_of(client_id: str) -> str:
    """The certificate ``owner`` value for seals a client may use."""
    return f"client:{client_id}"


def check_subject(subject: OrganisationSubject) -> None:
    """Refuse names and identifiers EN 319 412-1/-3 would not accept."""
    if not _IDENTIFIER.fullmatch(subject.identifier):
        raise CertificateRequestRejected(
            f"organisation identifier {subject.identifier!r} must look like NTREE-70000310 "
            "(VAT, NTR, PSD or LEI; the country; '-'; the registry number)"
        )
    if not re.fullmatch(r"[A-Z]{2}", subject.country):
        raise CertificateRequestRejected("country must be two capital letters, e.g. EE")
    if not subject.name.strip() or len(subject.name) > 64:
        raise CertificateRequestRejected("the organisation name must be 1-64 characters")


def issue_seal_certificate(
    session: Session,
    keystore: KeyStore,
    pki: Pki,
    *,
    subject: OrganisationSubject,
    client_id: str,
    now: datetime | None = None,
    lifetime: timedelta = SEAL_CERT_LIFETIME,
    actor: str = "system",
) -> CertificateRecord:
    """Create a P-256 seal key in the key store and certify it for ``client_id``. Commits."""
    check_subject(subject)
    when = now or utcnow()
    key_id = f"org-seal-{when:%Y%m%d%H%M%S%f}"
    info = keystore.create_key(key_id, KeyAlgorithm.EC_P256)
    issuer = pki.citizen_ca
    request = IssueRequest(
        profile=Profile.ORG_SEAL,
        subject=subject.x509_name(),
        public_key_der=info.public_key_der,
        not_before=when - timedelta(minutes=5),
        not_after=min(when + lifetime, as_utc(issuer.certificate.not_valid_after)),
        extensions=extensions_for(
            Profile.ORG_SEAL,
            subject_key_der=info.public_key_der,
            issuer_key_der=issuer.public_key_der,
            urls=pki.config.urls_of(issuer.name),
            policies=pki.config.policies,
        ),
        owner=owner_of(client_id),
        key_id=key_id,
    )
    return issue(session, keystore, issuer.signer, request, actor=actor)


def current_seal(
    session: Session, client_id: str, *, now: datetime | None = None
) -> CertificateRecord | None:
    """The newest valid seal certificate ``client_id`` may seal with, if any."""
    when = now or utcnow()
    rows = session.exec(
        select(CertificateRecord)
        .where(CertificateRecord.owner == owner_of(client_id))
        .where(CertificateRecord.profile == Profile.ORG_SEAL.value)
        .where(CertificateRecord.state == CertState.ISSUED.value)
        .order_by(col(CertificateRecord.id).desc())
    ).all()
    for row in rows:
        if as_utc(row.not_before) <= when < as_utc(row.not_after) and row.der and row.key_id:
            return row
    return None
