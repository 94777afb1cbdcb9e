"""Authlib grants and extensions, customised by subclassing (never copied).

- ``CodeGrant``: authorization code flow; codes live 60 s and are consumed atomically;
  PKCE is S256 only and required for public clients.
- ``OpenIDConnect``: ID tokens signed in the key store (RS256 by default, ES256 when the
  client registered it), with ``nonce`` only when sent, ``auth_time``, ``acr``, ``amr``,
  ``sid`` and ``at_hash``.
- ``RefreshGrant``: refresh tokens rotate on every use; reuse revokes the whole grant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core.grants import OpenIDCode
from sqlmodel import Session

from keys.keystore import KeyStore
from keys.models import as_utc, utcnow

from . import claims, jws, tokens
from . import grants as store
from .grants import CodeRecord, Owner
from .models import OAuthToken

ID_TOKEN_LIFETIME = 600


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only (``plain`` is refused); required for public clients."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        request = grant.request
        if request.client.is_public and not request.payload.data.get("code_challenge"):
            raise InvalidRequestError("PKCE (code_challenge with S256) is required for public clients")
        if request.payload.data.get("code_challenge") and not request.payload.data.get(
            "code_challenge_method"
        ):
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]

    def generate_authorization_code(self) -> str:
        """256 bits from ``secrets``, like our tokens: Authlib's default draws each of its 48
        characters with a system call of its own (~130 µs a code, against ~3 µs)."""
        return tokens.new_token_value()

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        requested_claims = getattr(request, "requested_claims", None)
        store.save_code(
            request.db,
            code,
            client_id=request.client.get_client_id(),
            owner=request.user,
            redirect_uri=data.get("redirect_uri") or "",
            scope=request.client.get_allowed_scope(data.get("scope", "")),
            nonce=data.get("nonce") or None,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            claims=requested_claims,
        )

    def query_authorization_code(self, code: str, client: Any) -> CodeRecord | None:
        return store.consume_code(self.request.tx, code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        """Already consumed when it was looked up."""

    def authenticate_user(self, authorization_code: CodeRecord) -> Owner:
        return authorization_code.owner


class OpenIDConnect(OpenIDCode):  # type: ignore[misc]
    """ID tokens made by us and signed in the key store."""

    def __init__(
        self, *, issuer: str, keystore: KeyStore, keys: Callable[[], dict[str, jws.SigningKey]]
    ) -> None:
        super().__init__(require_nonce=False)
        self.issuer = issuer
        self.keystore = keystore
        self.keys = keys

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return False  # nonces protect the client; it checks them in the ID token

    def generate_user_info(self, user: Owner, scope: str) -> dict[str, Any]:
        raise NotImplementedError("claims are built in encode_id_token")

    def encode_id_token(self, token: dict[str, Any], request: Any) -> str:
        code: CodeRecord = request.authorization_code
        owner = code.owner
        client = request.client
        citizen = store.citizen_for_claims(request.tx, owner.citizen_id)
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client.get_client_id(),
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME,
            "auth_time": int(owner.auth_time.timestamp()),
            "acr": owner.acr,
            "amr": list(owner.amr),
            "sid": owner.sid,
        }
        if code.get_nonce():
            body["nonce"] = code.get_nonce()
        if token.get("access_token"):
            body["at_hash"] = jws.half_hash(token["access_token"])
        id_token_claims = code.requested_claims.get("id_token") or {}
        body.update(claims.user_claims(citizen, token.get("scope", ""), id_token_claims))
        alg = client.metadata.get("id_token_signed_response_alg", "RS256")
        return jws.sign(self.keystore, self.keys()[alg], body)


class TokenRecord:
    """A usable refresh token as Authlib's refresh grant wants it."""

    def __init__(self, row: store.RefreshToken) -> None:
        self.row = row

    def check_client(self, client: Any) -> bool:
        return bool(self.row.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.row.scope


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

    def authenticate_refresh_token(self, refresh_token: str) -> TokenRecord | None:
        # A rotated token that comes back revokes its grant (someone has a copy).
        row = store.usable_refresh_token(self.request.tx, refresh_token)
        return None if row is None else TokenRecord(row)

    def authenticate_user(self, refresh_token: TokenRecord) -> _CitizenRef:
        # Rotate first, atomically: of two concurrent uses, one wins and the grant dies.
        if not store.rotate_refresh_token(self.request.tx, refresh_token.row):
            raise InvalidGrantError("the refresh token was already used; the grant is revoked")
        self.request.grant_id = refresh_token.row.grant_id
        return _CitizenRef(refresh_token.row.citizen_id)

    def revoke_old_credential(self, refresh_token: TokenRecord) -> None:
        """Rotated in ``authenticate_user`` already."""


class _CitizenRef:
    def __init__(self, citizen_id: int | None) -> None:
        self.citizen_id = citizen_id

    def get_user_id(self) -> int | None:
        return self.citizen_id


class IssuedToken:
    """A token row found by either of its values, for revocation and introspection."""

    def __init__(self, row: OAuthToken, kind: str) -> None:
        self.row = row
        self.kind = kind

    def check_client(self, client: Any) -> bool:
        return bool(self.row.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return self.row.scope

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None or (
            self.kind == "refresh_token" and self.row.refreshed_at is not None
        )

    def is_expired(self) -> bool:
        expires = self.row.access_expires_at if self.kind == "access_token" else self.row.refresh_expires_at
        return expires is not None and as_utc(expires) <= utcnow()


def _find_token(db: Session, value: str, hint: str | None) -> IssuedToken | None:
    kinds = (
        ["refresh_token", "access_token"] if hint == "refresh_token" else ["access_token", "refresh_token"]
    )
    for kind in kinds:
        row = store.find_token(db, value, kind)
        if row is not None:
            return IssuedToken(row, kind)
    return None


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. Revoking a refresh token revokes its whole grant; an access token, its row."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return _find_token(self.server.current_db(), token_string, token_type_hint)

    def revoke_token(self, token: IssuedToken, request: Any) -> None:
        db = request.db
        if token.kind == "refresh_token":
            store.revoke_grant(db, token.row.grant_id)
        else:
            store.revoke_token(db, token.row)


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662, for authenticated clients about their own tokens (or any, with ``admin``)."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return _find_token(self.server.current_db(), token_string, token_type_hint)

    def check_permission(self, token: IssuedToken, client: Any, request: Any) -> bool:
        return token.check_client(client) or "admin" in client.metadata.get("scope", "").split()

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        row = token.row
        expires = row.access_expires_at if token.kind == "access_token" else row.refresh_expires_at
        body: dict[str, Any] = {
            "active": True,
            "client_id": row.client_id,
            "scope": row.scope,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "iat": int(as_utc(row.issued_at).timestamp()),
            "iss": self.server.issuer,
        }
        if expires is not None:
            body["exp"] = int(as_utc(expires).timestamp())
        if row.citizen_id is not None:
            citizen = store.citizen_of(self.server.current_db(), row.citizen_id)
            body["sub"] = claims.subject(citizen)
        return body
