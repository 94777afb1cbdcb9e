"""Database table of ``verification/``: the status of every document that carries a QR token.

The token on paper never changes, so whether a document is still valid lives here, keyed
by the token's 128-bit document id (lowercase hex). The display fields are kept in full:
the token may hold shortened ones (see ``verification.qr``).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel


class QrDocument(SQLModel, table=True):
    """One signed or sealed document. ``state`` is ``valid`` or ``revoked``."""

    __tablename__ = "qr_document"

    id: int | None = Field(default=None, primary_key=True)
    document_id: str = Field(max_length=32, unique=True, description="128-bit id, lowercase hex")
    kind: str = Field(max_length=16, description="signature or seal")
    document_sha256: str = Field(max_length=64, description="SHA-256 of the document before signing, hex")
    document_length: int = Field(description="Byte length of the document before signing")
    display_name: str = Field(max_length=200, description="Signer or seal name, in full")
    organisation: str | None = Field(default=None, max_length=200)
    title: str | None = Field(default=None, max_length=300)
    issued_at: datetime
    state: str = Field(default="valid", max_length=16, index=True)
    revoked_at: datetime | None = None
    revocation_reason: str | None = Field(default=None, max_length=300)
