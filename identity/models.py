"""Database tables of ``identity/``.

Secrets (activation codes, browser bindings, session tokens) are stored only as
SHA-256 hashes; the values themselves exist only in the hands of whoever holds them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from keys.models import utcnow


class Citizen(SQLModel, table=True):
    """A registered person. ``state``: registered, active, suspended, revoked."""

    __tablename__ = "citizen"
    __table_args__ = (UniqueConstraint("country", "personal_code", name="uq_citizen_code"),)

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True, description="Opaque id used as certificate owner")
    country: str = Field(max_length=2)
    personal_code: str = Field(max_length=32)
    given_name: str = Field(max_length=200)
    family_name: str = Field(max_length=200)
    state: str = Field(max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ActivationCode(SQLModel, table=True):
    """A one-time code an officer gives a citizen for (re-)enrolment."""

    __tablename__ = "activation_code"

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    code_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    created_by: str = Field(max_length=128)


class Enrolment(SQLModel, table=True):
    """An enrolment between activation and certificates: holds the possession challenge."""

    __tablename__ = "enrolment"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    challenge: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    completed_at: datetime | None = None


class Device(SQLModel, table=True):
    """A citizen app installation, known by its device public key."""

    __tablename__ = "device"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    auth_serial: str = Field(max_length=42)
    sign_serial: str = Field(max_length=42)
    active: bool = Field(default=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)


class UsedTokenId(SQLModel, table=True):
    """``jti`` values of app request tokens already seen; kept until they expire."""

    __tablename__ = "used_token_id"

    jti: str = Field(primary_key=True, max_length=128)
    expires_at: datetime = Field(index=True)


class ApprovalRequest(SQLModel, table=True):
    """Something only the citizen's key can approve: a login or a signature.

    ``state``: pending, completed, refused, expired, failed.
    """

    __tablename__ = "approval_request"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    kind: str = Field(max_length=8)
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    hash_algorithm: str = Field(max_length=8)
    display_text: str = Field(max_length=200)
    verification_code: str = Field(max_length=4)
    binding_hash: str | None = Field(default=None, max_length=64, description="Hash of the browser binding")
    state: str = Field(max_length=16, index=True)
    failure_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    answered_at: datetime | None = None
    certificate_serial: str | None = Field(default=None, max_length=42)
    signature: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    consumed_at: datetime | None = Field(default=None, description="When the result was taken (single use)")


class WebEidNonce(SQLModel, table=True):
    """A Web eID challenge nonce: single use, five minutes, bound to one browser."""

    __tablename__ = "web_eid_nonce"

    id: int | None = Field(default=None, primary_key=True)
    nonce_hash: str = Field(max_length=64, unique=True)
    binding_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None


class LoginSession(SQLModel, table=True):
    """A citizen logged in to this service (the portal, and later OpenID Connect)."""

    __tablename__ = "login_session"
    __table_args__ = (UniqueConstraint("public_id", name="uq_login_session_public_id"),)

    id: int | None = Field(default=None, primary_key=True)
    public_id: str | None = Field(default=None, max_length=40, description="OpenID Connect 'sid'")
    token_hash: str = Field(max_length=64, unique=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    method: str = Field(max_length=16)
    amr: str = Field(max_length=64, description="Space-separated RFC 8176 values")
    acr: str = Field(max_length=16)
    certificate_serial: str = Field(max_length=42)
    auth_time: datetime
    expires_at: datetime
    ended_at: datetime | None = None


class Activity(SQLModel, table=True):
    """What a citizen can see about their own account: logins, signatures, changes."""

    __tablename__ = "activity"

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    kind: str = Field(max_length=32)
    summary: str = Field(max_length=300)
