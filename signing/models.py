"""Signing tables: sessions (one signer, one document), envelopes (several signers in
turn), sealed documents (an organisation's e-seal, no person), idempotency records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from keys.models import utcnow


class SigningSession(SQLModel, table=True):
    """``state``: awaiting_signature, finishing, completed, refused, expired, failed."""

    __tablename__ = "signing_session"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    initiator: str = Field(max_length=80, description="Who started it: a login session or a device")
    document_name: str = Field(max_length=200)
    level: str = Field(max_length=8)
    state: str = Field(max_length=24, index=True)
    source_blob: str = Field(max_length=64)
    prepared: bytes = Field(
        sa_column=Column(LargeBinary, nullable=False), description="signing.Prepared.to_bytes()"
    )
    approval_id: str = Field(max_length=40, index=True)
    envelope_id: int | None = Field(default=None, foreign_key="signing_envelope.id", index=True)
    signed_blob: str | None = Field(default=None, max_length=64)
    failure_reason: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow)
    delete_after: datetime = Field(index=True)


class SigningEnvelope(SQLModel, table=True):
    """A document several citizens sign in turn, each signature an incremental update.

    ``state``: open, completed, declined (a signer refused), cancelled (by the initiator).
    ``busy_session`` is the one signing session under way: signatures are made one after
    the other on the latest version, whatever the order."""

    __tablename__ = "signing_envelope"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True)
    initiator: str = Field(max_length=80, description="citizen:<id> or client:<client_id>")
    document_name: str = Field(max_length=200)
    level: str = Field(max_length=8)
    ordered: bool = Field(description="Signers sign in the listed order (else in any order)")
    state: str = Field(max_length=24, index=True)
    source_blob: str = Field(max_length=64)
    current_blob: str = Field(max_length=64, description="The latest version: source or last signed")
    busy_session: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=200)
    visible: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None
    delete_after: datetime = Field(index=True)


class EnvelopeSigner(SQLModel, table=True):
    """One required signer of an envelope. ``state``: waiting, signed, declined."""

    __tablename__ = "envelope_signer"
    __table_args__ = (UniqueConstraint("envelope_id", "citizen_id"),)

    id: int | None = Field(default=None, primary_key=True)
    envelope_id: int = Field(foreign_key="signing_envelope.id", index=True)
    position: int
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    state: str = Field(max_length=24)
    signed_at: datetime | None = None


class SealedDocument(SQLModel, table=True):
    """A PDF sealed with an organisation's e-seal for an OAuth client."""

    __tablename__ = "sealed_document"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True)
    client_id: str = Field(max_length=100, index=True)
    document_name: str = Field(max_length=200)
    level: str = Field(max_length=8)
    certificate_serial: str = Field(max_length=64)
    qr_document_id: str | None = Field(default=None, max_length=32)
    signed_blob: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    delete_after: datetime = Field(index=True)


class IdempotencyRecord(SQLModel, table=True):
    """An ``Idempotency-Key`` a caller sent, and what it created.

    The row is inserted before the work starts (the unique constraint makes a concurrent
    retry lose), and ``resource`` is filled in when the work is done."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("principal", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    principal: str = Field(max_length=120)
    key: str = Field(max_length=200)
    fingerprint: str = Field(max_length=64, description="SHA-256 of the request: route, options, body")
    resource: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, index=True)
