"""Client registry: registration by operators, secrets stored as hashes.

``Client`` wraps a row and gives Authlib the ``ClientMixin`` interface it expects.
Redirect URIs are compared exactly, character for character.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy import bindparam
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from keys import audit
from keys.dbapi import Prepared, Tx

from .. import _secrets
from ..errors import IdentityError
from .models import OAuthClient

SCOPES = ("openid", "profile", "offline_access", "admin", "signing", "seal")
"""``signing``: create envelopes for citizens to sign; ``seal``: seal with the client's e-seal."""
# Built once with a bind parameter: building it for every token request cost more than running it.
_BY_CLIENT_ID = select(OAuthClient).where(col(OAuthClient.client_id) == bindparam("client_id"))
_SECRET_METHODS = ("client_secret_basic", "client_secret_post")
_CLIENTS = OAuthClient.__table__  # type: ignore[attr-defined]
# What decides how a client authenticates and what it may do, for enabled clients only.
_STATE_BY_CLIENT_ID = Prepared(
    core_select(
        _CLIENTS.c.id,
        _CLIENTS.c.client_secret_hash,
        _CLIENTS.c.metadata_json,
        _CLIENTS.c.name,
        _CLIENTS.c.first_party,
        _CLIENTS.c.registration_token_hash,
    )
    .where(_CLIENTS.c.client_id == bindparam("client_id"))
    .where(_CLIENTS.c.disabled_at.is_(None))
)
_known: dict[tuple[Any, ...], Client] = {}
_KNOWN_MAX = 512


class ClientRegistrationError(IdentityError):
    status = 400
    public = True
    slug = "invalid-client-metadata"
    title = "Invalid client metadata"


class Client(ClientMixin):  # type: ignore[misc]
    """A registered client, as Authlib sees it."""

    def __init__(self, row: OAuthClient) -> None:
        self.row = row
        self.metadata: dict[str, Any] = json.loads(row.metadata_json)

    @property
    def client_id(self) -> str:
        return self.row.client_id

    @property
    def is_public(self) -> bool:
        return self.row.client_secret_hash is None

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.metadata.get("redirect_uris", [])
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.metadata.get("scope", "").split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.metadata.get("redirect_uris", [])

    def check_client_secret(self, client_secret: str) -> bool:
        if self.row.client_secret_hash is None:
            return False
        return hmac.compare_digest(self.row.client_secret_hash, _secrets.digest(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        registered = self.metadata.get("token_endpoint_auth_method")
        # Both ways of sending the same secret are accepted; other methods only as registered.
        if method in _SECRET_METHODS and registered in _SECRET_METHODS:
            return True
        return bool(method == registered)

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.metadata.get("response_types", [])

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.metadata.get("grant_types", [])


@dataclass(frozen=True, slots=True, kw_only=True)
class NewClient:
    """A registered client and its secret, shown once."""

    client: Client
    """The stored client."""
    client_secret: str | None
    """The secret in clear (None for public clients); only its hash is stored."""


def register(
    session: Session,
    *,
    name: str,
    redirect_uris: list[str],
    public: bool = False,
    scopes: list[str] | None = None,
    grant_types: list[str] | None = None,
    first_party: bool = False,
    extra_metadata: dict[str, Any] | None = None,
    actor: str,
) -> NewClient:
    """Register a client. Commits."""
    grants = grant_types or (
        ["authorization_code", "refresh_token"] if redirect_uris else ["client_credentials"]
    )
    for uri in redirect_uris:
        if not uri.startswith(("https://", "http://")) or "#" in uri:
            raise ClientRegistrationError(
                f"redirect URI {uri!r} must be an absolute http(s) URL without a fragment"
            )
    if "authorization_code" in grants and not redirect_uris:
        raise ClientRegistrationError("a client using the authorization code flow needs a redirect URI")
    if public and "client_credentials" in grants:
        raise ClientRegistrationError("a public client cannot use client_credentials")
    unknown = set(scopes or []) - set(SCOPES)
    if unknown:
        raise ClientRegistrationError(f"unknown scopes: {', '.join(sorted(unknown))}")
    metadata: dict[str, Any] = {
        "client_name": name,
        "redirect_uris": redirect_uris,
        "grant_types": grants,
        "response_types": ["code"] if "authorization_code" in grants else [],
        "scope": " ".join(scopes or (["openid", "profile"] if redirect_uris else [])),
        "token_endpoint_auth_method": "none" if public else "client_secret_basic",
    }
    metadata.update(extra_metadata or {})
    secret = None if public else secrets.token_urlsafe(32)
    row = OAuthClient(
        client_id=secrets.token_urlsafe(16),
        client_secret_hash=_secrets.digest(secret) if secret else None,
        name=name,
        metadata_json=json.dumps(metadata, sort_keys=True),
        first_party=first_party,
    )
    session.add(row)
    audit.record(
        session, actor=actor, action="client.registered", target=row.client_id, details={"name": name}
    )
    session.commit()
    session.refresh(row)
    return NewClient(client=Client(row), client_secret=secret)


def find(session: Session, client_id: str | None) -> Client | None:
    if not client_id or len(client_id) > 64:
        return None
    # Read on every request (no cache), so a disabled client is refused at once.
    row = session.exec(_BY_CLIENT_ID, params={"client_id": client_id}).first()
    if row is None or row.disabled_at is not None:
        return None
    return Client(row)


def lookup(tx: Tx, client_id: str | None) -> Client | None:
    """The enabled client ``client_id``, for the OAuth endpoints (Authlib's ``query_client``).

    Its row is read on every call, so a disabled or changed client is seen at once; only the
    ``Client`` built from an unchanged row (its parsed metadata) is reused, since building it
    cost more than the read. The ``Client`` returned is shared: read it, never change it.
    """
    if not client_id or len(client_id) > 64:
        return None
    state = tx.one(_STATE_BY_CLIENT_ID, {"client_id": client_id})
    if state is None:
        return None
    key = (client_id, *state)
    client = _known.get(key)
    if client is None:
        client = find(tx.session, client_id)
        if client is None:  # disabled between the two reads
            return None
        row = client.row
        if (row.client_secret_hash, row.metadata_json) == (state[1], state[2]):  # else changed meanwhile
            if len(_known) >= _KNOWN_MAX:
                _known.clear()
            tx.session.expunge(row)  # shared from now on: never flushed by any session
            _known[key] = client
    return client
