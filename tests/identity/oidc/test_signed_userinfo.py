"""Signed UserInfo responses for clients that registered userinfo_signed_response_alg."""

from __future__ import annotations

import httpx
import jwt

from identity.oauth import clients
from tests.conftest import RunningServer
from tests.identity.oidc._flows import login
from tests.identity.oidc.conftest import REDIRECT, Browser, Citizen, RelyingParty, database


def test_userinfo_as_a_signed_jwt(server: RunningServer, browser: Browser, citizen: Citizen) -> None:
    with database(server) as session:
        created = clients.register(
            session,
            name="Signed userinfo",
            redirect_uris=[REDIRECT],
            scopes=["openid", "profile"],
            first_party=True,
            extra_metadata={"userinfo_signed_response_alg": "ES256"},
            actor="test",
        )
        rp = RelyingParty(created.client.client_id, created.client_secret)
    tokens = login(server, browser, citizen, rp)
    response = httpx.get(
        server.url + "/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwt"
    header = jwt.get_unverified_header(response.text)
    assert header["alg"] == "ES256"
    keys = httpx.get(server.url + "/oauth/jwks").json()["keys"]
    key = jwt.PyJWK(next(k for k in keys if k["kid"] == header["kid"]))
    claims = jwt.decode(
        response.text, key.key, algorithms=["ES256"], audience=rp.client_id, issuer=server.url
    )
    assert claims["sub"] == f"EE{citizen.code}" and claims["family_name"] == "Männik"
