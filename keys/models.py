"""Database tables of ``keys/``: certificates, CRLs and the audit chain.

Serial numbers are stored as lowercase hex strings: they are up to 20 octets, which no
SQL integer type holds on every database.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class CertificateRecord(SQLModel, table=True):
    """One certificate, from the reserved serial to issuance and revocation.

    ``state`` is ``reserved`` (serial taken, intent recorded, maybe signed: never
    reused and answered as revoked by OCSP), ``issued`` or ``revoked``.
    """

    __tablename__ = "certificate"

    id: int | None = Field(default=None, primary_key=True)
    serial: str = Field(max_length=42, unique=True, index=True)
    issuer: str = Field(max_length=64, index=True, description="Name of the issuing CA")
    profile: str = Field(max_length=32, index=True)
    subject: str = Field(max_length=512, description="RFC 4514 subject, for people")
    owner: str | None = Field(default=None, max_length=64, index=True, description="Opaque owner reference")
    key_id: str | None = Field(default=None, max_length=64, description="Service key id")
    state: str = Field(max_length=16, index=True)
    not_before: datetime
    not_after: datetime
    der: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    revocation_reason: str | None = Field(default=None, max_length=32)
    revision: int = Field(default=0, description="Bumped on every status change")


class CrlRecord(SQLModel, table=True):
    """Every CRL ever published, so numbers only go up."""

    __tablename__ = "crl"
    __table_args__ = (UniqueConstraint("issuer", "number", name="uq_crl_issuer_number"),)

    id: int | None = Field(default=None, primary_key=True)
    issuer: str = Field(max_length=64, index=True)
    number: int
    this_update: datetime
    next_update: datetime
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AuditEntry(SQLModel, table=True):
    """Append-only log; each entry carries the hash of the one before it."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=128)
    action: str = Field(max_length=64, index=True)
    target: str = Field(max_length=256)
    details: str = Field(default="{}", description="Canonical JSON")
    prev_hash: str = Field(max_length=64, unique=True)
    hash: str = Field(default="", max_length=64, unique=True)
