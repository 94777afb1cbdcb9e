"""Authlib's ``AuthorizationServer`` fed from FastAPI requests.

Authlib is synchronous and framework-agnostic: it wants an ``OAuth2Request`` and gives
back ``(status, body, headers)``. The routes read the body asynchronously, then call
the server in a plain ``def`` (thread pool), with a database session riding on the
request object.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError, InvalidClientError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from fastapi import Response
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from identity.models import UsedTokenId
from identity.oauth import clients, jws, provider, tokens
from identity.oauth.grants import REFRESH_LIFETIME
from keys.dbapi import Tx
from keys.keystore import KeyStore

ACCESS_TOKEN_SECONDS = int(tokens.ACCESS_TOKEN_LIFETIME.total_seconds())
# The request being handled (each request runs in its own context): Authlib asks for
# clients without passing it.
_current: ContextVar[Request] = ContextVar("oauth_request")


class FormPayload(OAuth2Payload):  # type: ignore[misc]
    """Query and form parameters, keeping repeated ones so Authlib can refuse them."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


# Authlib's request constructor refuses a URI that is not https (or loopback http) and
# parses it to decide, every time: for the loopback ``http://`` public URL of tests and
# benchmarks an ``ipaddress`` parse per request, a tenth of a refresh grant. Our URIs are
# the configured public URL plus a path (and query), so each distinct one is checked once,
# with Authlib's own check, and Authlib is given a URI it accepts at a glance.
_transport_checked: set[str] = set()
_TRANSPORT_CHECKED_MAX = 256
_CHECKED_URI = "https://checked.invalid/"


class Request(OAuth2Request):  # type: ignore[misc]
    """An OAuth request as Authlib wants it, plus its database transaction.

    Given a session (``db``), its statements run in that session's transaction; given a
    ``Tx`` (the token endpoint), an ORM session on the same connection is made only if a
    step needs one (``db``).
    """

    def __init__(
        self,
        *,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        query: list[tuple[str, str]],
        form: list[tuple[str, str]],
        db: Session | None = None,
        tx: Tx | None = None,
    ) -> None:
        if uri not in _transport_checked:
            InsecureTransportError.check(uri)  # what Authlib's constructor checks, once per URI
            if len(_transport_checked) < _TRANSPORT_CHECKED_MAX:
                _transport_checked.add(uri)
        super().__init__(method=method, uri=_CHECKED_URI, headers=headers)
        self.uri = uri
        if tx is None:
            assert db is not None
            tx = Tx(db)
        self.tx = tx
        self._args = dict(query) if query else {}
        self._form = dict(form)
        self.payload = FormPayload(query + form if query else form)

    @property
    def db(self) -> Session:
        """The ORM session of this request's transaction."""
        return self.tx.session

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    """Service clients (the admin API) authenticate with their secret; no refresh tokens."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt``: a JWT signed with a key from the client's registered ``jwks``.

    Keys come only from the registration, never from the assertion's header (``jwk``,
    ``jku``, ``x5u``). The audience is our issuer (or the token endpoint), each ``jti``
    is accepted once.
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, issuer: str) -> None:
        super().__init__(validate_jti=True, leeway=60)
        self.issuer = issuer

    def get_audiences(self) -> list[str]:
        return [self.issuer, self.issuer + "/oauth/token"]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        db = _current.get().db
        expires = datetime.fromtimestamp(int(claims.get("exp", 0)), UTC) + timedelta(minutes=5)
        db.add(UsedTokenId(jti=f"pkjwt:{claims['sub']}:{jti}"[:128], expires_at=expires))
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            return False
        return True

    def resolve_client_public_key(self, client: Any) -> Any:
        jwks = client.metadata.get("jwks")
        if not isinstance(jwks, dict):
            raise InvalidClientError(description="the client registered no jwks for private_key_jwt")
        return KeySet.import_key_set(jwks)  # type: ignore[arg-type]  # shape checked by joserfc


class OAuthServer(AuthorizationServer):  # type: ignore[misc]
    """Our authorization server: client lookup and token storage in the database."""

    def __init__(
        self, *, issuer: str, keystore: KeyStore, keys: Callable[[], dict[str, jws.SigningKey]]
    ) -> None:
        super().__init__(scopes_supported=list(clients.SCOPES))
        self.issuer = issuer
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda *args, **kwargs: tokens.new_token_value(),
                refresh_token_generator=lambda *args, **kwargs: tokens.new_token_value(),
                expires_generator=lambda client, grant_type: ACCESS_TOKEN_SECONDS,
            ),
        )
        self.register_client_auth_method("private_key_jwt", PrivateKeyJwt(issuer))
        self.register_grant(ClientCredentials)
        self.register_grant(
            provider.CodeGrant,
            [
                provider.S256Only(required=True),
                provider.OpenIDConnect(issuer=issuer, keystore=keystore, keys=keys),
            ],
        )
        self.register_grant(provider.RefreshGrant)
        self.register_endpoint(provider.Revocation)
        self.register_endpoint(provider.Introspection)

    def current_db(self) -> Session:
        """The database session of the request being handled."""
        return _current.get().db

    def query_client(self, client_id: str) -> clients.Client | None:
        # Authlib calls this without the request; the request is in a context var.
        request = _current.get()
        tx = request.tx if isinstance(request, Request) else Tx(request.db)  # registration's JSON
        return clients.lookup(tx, client_id)

    def save_token(self, token: dict[str, Any], request: Request) -> None:
        user = request.user
        code = getattr(request, "authorization_code", None)
        grant_id = code.row.grant_id if code is not None else getattr(request, "grant_id", None)
        tokens.store(
            request.tx,
            token,
            client_id=request.client.get_client_id(),
            citizen_id=getattr(user, "citizen_id", None),
            grant_id=grant_id,
            refresh_lifetime=REFRESH_LIFETIME if token.get("refresh_token") else None,
        )
        # Committed now, before anything else of the request may write through another
        # connection (it would wait for this one's lock); a refresh grant in a group is
        # committed with the group's other grants instead (``api/routes/oauth.py``).
        if not request.tx.grouped:
            request.tx.commit()

    def create_oauth2_request(self, request: Request) -> Request:
        _current.set(request)
        return request

    def create_json_request(self, request: Request) -> Request:
        _current.set(request)
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]] | dict[str, str]
    ) -> Response:
        content = json.dumps(body) if isinstance(body, dict) else (body or "")
        # Headers given at construction: setting them one by one afterwards cost more.
        return Response(content, status_code=status, headers=dict(headers), media_type="application/json")

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib's hook for events; the audit log records what matters in the domain code."""
