"""Status of the documents that carry a QR token: recorded at signing, revocable later.

None of these functions commits: the flow that owns the operation owns the transaction
(the signing flow records the document in the same transaction that completes it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from keys import audit
from keys.models import as_utc, utcnow

from .errors import InvalidQrInput, QrDocumentAlreadyRevoked, QrDocumentNotFound
from .models import QrDocument
from .qr import KEY_NAME, KEY_ORGANISATION, KEY_TITLE, MAX_TEXT, DocumentKind

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_REASON = 300


class DocumentState(StrEnum):
    VALID = "valid"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentStatus:
    """What the status table says about one document."""

    document_id: str
    """128-bit id, lowercase hex."""
    kind: DocumentKind
    """Signature or seal."""
    document_sha256: bytes
    """SHA-256 of the document before signing."""
    document_length: int
    """Byte length of the document before signing: the signed PDF starts with these bytes."""
    display_name: str
    """Signer's or seal's name, in full."""
    organisation: str | None
    """Issuing organisation (seals), in full."""
    title: str | None
    """Document title (seals), in full."""
    issued_at: datetime
    """When the document was signed or sealed."""
    state: DocumentState
    """Valid, or revoked by its issuer."""
    revoked_at: datetime | None
    """When it was revoked."""
    revocation_reason: str | None
    """Why, in the issuer's words."""


def parse_document_id(value: str) -> str:
    """A document id as 32 lowercase hex digits; ``InvalidQrInput`` otherwise."""
    text = value.strip().lower()
    if not _HEX_ID.fullmatch(text):
        raise InvalidQrInput("a document id is 32 hexadecimal digits")
    return text


def _status(row: QrDocument) -> DocumentStatus:
    return DocumentStatus(
        document_id=row.document_id,
        kind=DocumentKind(row.kind),
        document_sha256=bytes.fromhex(row.document_sha256),
        document_length=row.document_length,
        display_name=row.display_name,
        organisation=row.organisation,
        title=row.title,
        issued_at=as_utc(row.issued_at),
        state=DocumentState(row.state),
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        revocation_reason=row.revocation_reason,
    )


def record_document(
    session: Session,
    *,
    document_id: bytes,
    kind: DocumentKind,
    document: bytes | Iterable[bytes] | None = None,
    document_sha256: bytes | None = None,
    document_length: int | None = None,
    display_name: str,
    issued_at: datetime,
    organisation: str | None = None,
    title: str | None = None,
) -> DocumentStatus:
    """Record a document whose QR token is being issued (flushed, not committed).

    Give either the original ``document`` bytes (or chunks of them), or its SHA-256 and
    length. Texts are stored in full; the token may carry shortened ones.
    """
    if document is not None:
        digest, length = hashlib.sha256(), 0
        for chunk in [document] if isinstance(document, bytes) else document:
            digest.update(chunk)
            length += len(chunk)
        document_sha256, document_length = digest.digest(), length
    if document_sha256 is None or document_length is None:
        raise InvalidQrInput("give the document, or its SHA-256 and length")
    if len(document_id) != 16 or len(document_sha256) != 32 or document_length < 0:
        raise InvalidQrInput("the document id must be 16 bytes, the hash 32 bytes and the length >= 0")
    for value, key, label in (
        (display_name, KEY_NAME, "display name"),
        (organisation, KEY_ORGANISATION, "organisation"),
        (title, KEY_TITLE, "title"),
    ):
        if value is not None and len(value) > MAX_TEXT[key]:
            raise InvalidQrInput(f"the {label} is longer than {MAX_TEXT[key]} characters")
    row = QrDocument(
        document_id=document_id.hex(),
        kind=kind.value,
        document_sha256=document_sha256.hex(),
        document_length=document_length,
        display_name=display_name,
        organisation=organisation,
        title=title,
        issued_at=issued_at,
        state=DocumentState.VALID.value,
    )
    duplicate = InvalidQrInput("a document with this id is recorded already")
    if session.exec(select(QrDocument.id).where(QrDocument.document_id == row.document_id)).first():
        raise duplicate
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        # A concurrent insert of the same id; the caller rolls its transaction back.
        raise duplicate from None
    return _status(row)


def _row(session: Session, document_id: str) -> QrDocument:
    row = session.exec(
        select(QrDocument).where(QrDocument.document_id == parse_document_id(document_id))
    ).first()
    if row is None:
        raise QrDocumentNotFound("no document with this id was signed or sealed here")
    return row


def document_status(session: Session, document_id: str) -> DocumentStatus:
    """The status of one document (id in hex); ``QrDocumentNotFound`` if never recorded."""
    return _status(_row(session, document_id))


def revoke_document(
    session: Session, document_id: str, reason: str, *, actor: str = "eid cli"
) -> DocumentStatus:
    """Mark a document revoked and log it in the audit chain (flushed, not committed)."""
    text = " ".join(reason.split())
    if not text or len(text) > MAX_REASON:
        raise InvalidQrInput(f"give a reason of 1 to {MAX_REASON} characters")
    row = _row(session, document_id)
    if row.state == DocumentState.REVOKED.value:
        raise QrDocumentAlreadyRevoked(f"document {row.document_id} was revoked already")
    row.state = DocumentState.REVOKED.value
    row.revoked_at = utcnow()
    row.revocation_reason = text
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="qr-document-revoked",
        target=row.document_id,
        details={"kind": row.kind, "reason": text},
    )
    return _status(row)
