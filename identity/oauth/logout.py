"""Logout: RP-initiated (the service asks) and back-channel (we tell the services).

Ending a login session ends single sign-on for it; every client that received a code in
that session and registered a ``backchannel_logout_uri`` gets a signed logout token
(OpenID Connect Back-Channel Logout 1.0): ``typ`` ``logout+jwt``, the logout event,
``sid`` and ``sub``, never a ``nonce``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sqlmodel import Session, select

from keys.keystore import KeyStore

from . import clients, jws
from .models import AuthorizationCode

EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_LIFETIME = 120


@dataclass(frozen=True, slots=True, kw_only=True)
class LogoutNotice:
    """One back-channel logout to deliver."""

    client_id: str
    """Who is told."""
    uri: str
    """Their registered back-channel logout URI."""
    logout_token: str
    """The signed logout token."""


def clients_of_session(db: Session, sid: str) -> list[str]:
    rows = db.exec(select(AuthorizationCode.client_id).where(AuthorizationCode.sid == sid).distinct())
    return sorted(set(rows))


def notices(
    db: Session, *, sid: str, subject: str, issuer: str, keystore: KeyStore, key: jws.SigningKey
) -> list[LogoutNotice]:
    """Logout tokens for every client of the session that asked for back-channel logout."""
    result = []
    for client_id in clients_of_session(db, sid):
        client = clients.find(db, client_id)
        uri = client.metadata.get("backchannel_logout_uri") if client else None
        if not uri:
            continue
        now = int(time.time())
        token = jws.sign(
            keystore,
            key,
            {
                "iss": issuer,
                "aud": client_id,
                "iat": now,
                "exp": now + LOGOUT_TOKEN_LIFETIME,
                "jti": secrets.token_urlsafe(16),
                "sub": subject,
                "sid": sid,
                "events": {EVENT: {}},
            },
            typ="logout+jwt",
        )
        result.append(LogoutNotice(client_id=client_id, uri=uri, logout_token=token))
    return result


def post_logout_allowed(client: clients.Client, uri: str) -> bool:
    """Exact match against the client's registered post-logout redirect URIs."""
    return uri in client.metadata.get("post_logout_redirect_uris", [])
