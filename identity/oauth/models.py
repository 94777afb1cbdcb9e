"""Tables of the OAuth 2.0 / OpenID Connect provider."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from keys.models import utcnow


class OAuthClient(SQLModel, table=True):
    """A registered relying party or service client. ``metadata_json`` is RFC 7591 metadata."""

    __tablename__ = "oauth_client"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64, unique=True)
    client_secret_hash: str | None = Field(default=None, max_length=64)
    name: str = Field(max_length=200)
    metadata_json: str = Field(default="{}")
    first_party: bool = Field(default=False, description="Pre-approved: no consent page")
    registration_token_hash: str | None = Field(
        default=None, max_length=64, description="RFC 7592 access token"
    )
    created_at: datetime = Field(default_factory=utcnow)
    disabled_at: datetime | None = None


class OAuthToken(SQLModel, table=True):
    """An issued access token (and refresh token), stored as hashes."""

    __tablename__ = "oauth_token"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64, index=True)
    citizen_id: int | None = Field(default=None, foreign_key="citizen.id", index=True)
    grant_id: str = Field(max_length=40, index=True, description="All tokens of one grant share it")
    scope: str = Field(default="", max_length=500)
    access_token_hash: str = Field(max_length=64, unique=True)
    refresh_token_hash: str | None = Field(default=None, max_length=64, unique=True)
    issued_at: datetime = Field(default_factory=utcnow)
    access_expires_at: datetime
    refresh_expires_at: datetime | None = None
    revoked_at: datetime | None = None
    refreshed_at: datetime | None = Field(default=None, description="Set when rotated away (single use)")


class AuthorizationRequest(SQLModel, table=True):
    """An authorization request parked while the citizen logs in or consents."""

    __tablename__ = "oauth_authorization_request"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True)
    client_id: str = Field(max_length=64)
    params_json: str = Field(description="The request's parameters as a list of pairs")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    completed_at: datetime | None = None


class AuthorizationCode(SQLModel, table=True):
    """An authorization code: lives at most 60 s, used once (atomic consume)."""

    __tablename__ = "oauth_authorization_code"

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    client_id: str = Field(max_length=64, index=True)
    citizen_id: int = Field(foreign_key="citizen.id")
    redirect_uri: str = Field(max_length=2000)
    scope: str = Field(default="", max_length=500)
    nonce: str | None = Field(default=None, max_length=512)
    code_challenge: str | None = Field(default=None, max_length=128)
    code_challenge_method: str | None = Field(default=None, max_length=8)
    claims_json: str | None = Field(default=None, description="The 'claims' request parameter")
    auth_time: datetime
    acr: str = Field(max_length=16)
    amr: str = Field(max_length=64)
    sid: str = Field(max_length=40)
    grant_id: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None


class Consent(SQLModel, table=True):
    """A citizen's remembered permission for a client to receive some scopes."""

    __tablename__ = "oauth_consent"

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    client_id: str = Field(max_length=64, index=True)
    scope: str = Field(max_length=500)
    granted_at: datetime = Field(default_factory=utcnow)
    withdrawn_at: datetime | None = None


class SigningKeyRecord(SQLModel, table=True):
    """A token signing key: the newest of each algorithm signs, older ones stay published."""

    __tablename__ = "oauth_signing_key"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(max_length=64, unique=True, description="Key store id")
    alg: str = Field(max_length=8)
    created_at: datetime = Field(default_factory=utcnow)
    retire_at: datetime | None = Field(default=None, description="Unpublished after this time")
