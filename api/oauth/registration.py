"""Dynamic client registration (RFC 7591) and client management (RFC 7592), via Authlib.

Registration is open (OpenID Connect Dynamic Registration) unless switched off; clients
registered this way are never first-party (their citizens always see the consent page)
and may ask only for the OpenID Connect scopes. Secrets and registration access tokens
are stored as hashes.
"""

from __future__ import annotations

import json
import secrets
from contextvars import ContextVar
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from authlib.oauth2.rfc7591 import ClientMetadataClaims as OAuthMetadata
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7591.errors import InvalidClientMetadataError
from authlib.oauth2.rfc7592 import ClientConfigurationEndpoint
from authlib.oidc.registration import ClientMetadataClaims as OidcMetadata
from sqlmodel import Session, select

from identity import _secrets
from identity.oauth import clients
from identity.oauth.models import OAuthClient

DYNAMIC_SCOPES = ("openid", "profile", "offline_access")
_metadata_of: ContextVar[dict[str, Any]] = ContextVar("server_metadata")


class JsonRequest:
    """A JSON request as Authlib's registration endpoints want it."""

    def __init__(self, *, method: str, uri: str, headers: Any, data: dict[str, Any], db: Session) -> None:
        self.method = method
        self.uri = uri
        self.headers = headers
        self.db = db
        self.payload = _Payload(data)
        self.credential: Any = None
        self.client: Any = None


class _Payload:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data


def _normalise(metadata: dict[str, Any]) -> dict[str, Any]:
    """Defaults of RFC 7591 and OpenID Connect Registration, and our limits."""
    result = dict(metadata)
    result.setdefault("grant_types", ["authorization_code"])
    result.setdefault("response_types", ["code"])
    result.setdefault("token_endpoint_auth_method", "client_secret_basic")
    result.setdefault("id_token_signed_response_alg", "RS256")
    requested = result.get("scope", "openid profile").split()
    result["scope"] = " ".join(s for s in requested if s in DYNAMIC_SCOPES) or "openid"
    if set(result["grant_types"]) - {"authorization_code", "refresh_token"}:
        raise InvalidClientMetadataError("only authorization_code and refresh_token grants can be registered")
    if result["response_types"] != ["code"]:
        raise InvalidClientMetadataError("only the 'code' response type is supported")
    if result["id_token_signed_response_alg"] not in ("RS256", "ES256"):
        raise InvalidClientMetadataError("id_token_signed_response_alg must be RS256 or ES256")
    if result.get("userinfo_signed_response_alg") not in (None, "RS256", "ES256"):
        raise InvalidClientMetadataError("userinfo_signed_response_alg must be RS256 or ES256")
    if "jwks_uri" in result:
        raise InvalidClientMetadataError("register keys by value (jwks); the service fetches no jwks_uri")
    if result["token_endpoint_auth_method"] == "private_key_jwt" and not isinstance(result.get("jwks"), dict):
        raise InvalidClientMetadataError("private_key_jwt needs jwks")
    uris = result.get("redirect_uris") or []
    if not uris or any(
        not isinstance(u, str) or "#" in u or not u.startswith(("https://", "http://")) for u in uris
    ):
        raise InvalidClientMetadataError("redirect_uris must be absolute http(s) URLs without fragments")
    return result


class Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    def __init__(self, server: Any) -> None:
        super().__init__(server, claims_classes=[OAuthMetadata, OidcMetadata])

    def get_server_metadata(self) -> dict[str, Any]:
        return _metadata_of.get()

    def authenticate_token(self, request: JsonRequest) -> bool:
        return True  # open registration; switched off in the route when disabled

    def resolve_public_key(self, request: JsonRequest) -> None:
        return None  # no software statements

    def generate_client_secret(self, request: JsonRequest) -> str | None:
        if request.payload.data.get("token_endpoint_auth_method") == "none":
            return None
        return secrets.token_urlsafe(32)

    def extract_client_metadata(self, request: JsonRequest) -> dict[str, Any]:
        return _normalise(super().extract_client_metadata(request))

    def save_client(
        self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: JsonRequest
    ) -> clients.Client:
        token = secrets.token_urlsafe(32)
        request.registration_token = token  # type: ignore[attr-defined]
        row = OAuthClient(
            client_id=client_info["client_id"],
            client_secret_hash=_secrets.digest(client_info["client_secret"])
            if client_info.get("client_secret")
            else None,
            name=str(client_metadata.get("client_name") or "Unnamed service")[:200],
            metadata_json=json.dumps(client_metadata, sort_keys=True),
            first_party=False,
            registration_token_hash=_secrets.digest(token),
        )
        request.db.add(row)
        request.db.commit()
        request.db.refresh(row)
        return clients.Client(row)

    def generate_client_registration_info(
        self, client: clients.Client, request: JsonRequest
    ) -> dict[str, str]:
        return {
            "registration_client_uri": f"{self.server.issuer}/oauth/register/{client.client_id}",
            "registration_access_token": request.registration_token,  # type: ignore[attr-defined]
        }


class _RegistrationToken:
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    def check_client(self, client: clients.Client) -> bool:
        return self.client_id == client.client_id


class Configuration(ClientConfigurationEndpoint):  # type: ignore[misc]
    def __init__(self, server: Any) -> None:
        super().__init__(server, claims_classes=[OAuthMetadata, OidcMetadata])

    def get_server_metadata(self) -> dict[str, Any]:
        return _metadata_of.get()

    def authenticate_token(self, request: JsonRequest) -> _RegistrationToken | None:
        auth = request.headers.get("authorization") or ""
        if not auth.lower().startswith("bearer "):
            raise InvalidTokenError(description="a registration access token is required")
        row = request.db.exec(
            select(OAuthClient).where(
                OAuthClient.registration_token_hash == _secrets.digest(auth[7:].strip())
            )
        ).first()
        if row is None or row.disabled_at is not None:
            raise InvalidTokenError(
                description="unknown or revoked registration access token"
            )  # 401 (RFC 6750)
        return _RegistrationToken(row.client_id)

    def authenticate_client(self, request: JsonRequest) -> clients.Client | None:
        return clients.find(request.db, request.client_id_in_path)  # type: ignore[attr-defined]

    def revoke_access_token(self, request: JsonRequest, token: Any) -> None:
        """Nothing to do: a registration token only works for an existing client."""

    def check_permission(self, client: clients.Client, request: JsonRequest) -> bool:
        return True

    def delete_client(self, client: clients.Client, request: JsonRequest) -> None:
        from keys.models import utcnow

        client.row.disabled_at = utcnow()
        request.db.add(client.row)
        request.db.commit()

    def extract_client_metadata(self, request: JsonRequest) -> dict[str, Any]:
        data = dict(request.payload.data)
        data.pop("client_id", None)
        data.pop("client_secret", None)
        return _normalise(
            super().extract_client_metadata(
                JsonRequest(
                    method=request.method, uri=request.uri, headers=request.headers, data=data, db=request.db
                )
            )
        )

    def update_client(
        self, client: clients.Client, client_metadata: dict[str, Any], request: JsonRequest
    ) -> clients.Client:
        client.row.metadata_json = json.dumps(client_metadata, sort_keys=True)
        client.row.name = str(client_metadata.get("client_name") or client.row.name)[:200]
        request.db.add(client.row)
        request.db.commit()
        return clients.Client(client.row)

    def introspect_client(self, client: clients.Client) -> dict[str, Any]:
        return {"client_id": client.client_id, **client.metadata}

    def generate_client_registration_info(
        self, client: clients.Client, request: JsonRequest
    ) -> dict[str, str]:
        auth = request.headers.get("authorization") or ""
        return {
            "registration_client_uri": f"{self.server.issuer}/oauth/register/{client.client_id}",
            "registration_access_token": auth[7:].strip(),
        }


def set_server_metadata(metadata: dict[str, Any]) -> None:
    _metadata_of.set(metadata)


__all__ = ["Configuration", "InvalidRequestError", "JsonRequest", "Registration", "set_server_metadata"]
