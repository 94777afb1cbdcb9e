"""The signing session table: one document, one signer, from upload to download."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary
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
    signed_blob: str | None = Field(default=None, max_length=64)
    failure_reason: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow)
    delete_after: datetime = Field(index=True)
