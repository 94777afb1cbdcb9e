"""The QR code on a signature or seal stamp: a token for the document, and its record.

The token is issued when the document is prepared (it goes into the stamp, so into what
is signed) and recorded in the same transaction as the session or sealed document, so a
QR code in a finished document always has a status record. Its document hash is of the
file exactly as it was before this signature (see ``docs/verification.md``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from keys.models import utcnow
from verification.qr import DocumentKind, issue_token, qr_url
from verification.qr_status import record_document

from .services import Services


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedQr:
    document_id: bytes
    """128-bit random id of the document."""
    kind: DocumentKind
    """Signature or seal."""
    document_sha256: bytes
    """SHA-256 of the document before signing."""
    document_length: int
    """Its length in bytes."""
    display_name: str
    """Signer or organisation."""
    organisation: str | None
    """The sealing organisation (seals)."""
    title: str | None
    """The document title (seals)."""
    issued_at: datetime
    """Time in the token."""
    url: str
    """What the QR code encodes: ``EID_PUBLIC_URL/v/<token>``."""

    @property
    def document_id_hex(self) -> str:
        return self.document_id.hex()


def _issue(
    services: Services,
    *,
    kind: DocumentKind,
    document_sha256: bytes,
    document_length: int,
    display_name: str,
    organisation: str | None = None,
    title: str | None = None,
) -> IssuedQr:
    document_id, now = secrets.token_bytes(16), utcnow().replace(microsecond=0)
    token = issue_token(
        services.keystore,
        services.pki.qr_seal,
        kind=kind,
        document_id=document_id,
        document_sha256=document_sha256,
        display_name=display_name,
        issued_at=now,
        organisation=organisation,
        title=title,
        public_url=services.settings.public_url,
    )
    return IssuedQr(
        document_id=document_id,
        kind=kind,
        document_sha256=document_sha256,
        document_length=document_length,
        display_name=display_name,
        organisation=organisation,
        title=title,
        issued_at=now,
        url=qr_url(services.settings.public_url, token),
    )


def signature_token(
    services: Services, *, document_sha256: bytes, document_length: int, signer_name: str
) -> IssuedQr:
    return _issue(
        services,
        kind=DocumentKind.SIGNATURE,
        document_sha256=document_sha256,
        document_length=document_length,
        display_name=signer_name,
    )


def seal_token(
    services: Services, *, document_sha256: bytes, document_length: int, organisation: str, title: str
) -> IssuedQr:
    return _issue(
        services,
        kind=DocumentKind.SEAL,
        document_sha256=document_sha256,
        document_length=document_length,
        display_name=organisation,
        organisation=organisation,
        title=title[:300],
    )


def record(db: Session, issued: IssuedQr) -> None:
    """Record the document's status row (flushed; the caller commits)."""
    record_document(
        db,
        document_id=issued.document_id,
        kind=issued.kind,
        document_sha256=issued.document_sha256,
        document_length=issued.document_length,
        display_name=issued.display_name,
        issued_at=issued.issued_at,
        organisation=issued.organisation,
        title=issued.title,
    )
