"""RFC 7009 revocation and RFC 7662 introspection."""

from __future__ import annotations

import httpx

from tests.conftest import RunningServer
from tests.identity.oidc._flows import login
from tests.identity.oidc.conftest import Browser, Citizen, register_rp


def _introspect(server: RunningServer, rp: object, token: str) -> dict[str, object]:
    response = httpx.post(
        server.url + "/oauth/introspect",
        data={"token": token},
        auth=(rp.client_id, rp.client_secret),  # type: ignore[attr-defined]
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_introspection_then_revocation_of_the_refresh_token(
    server: RunningServer, browser: Browser, citizen: Citizen
) -> None:
    rp = register_rp(server)
    tokens = login(server, browser, citizen, rp)
    info = _introspect(server, rp, tokens["access_token"])
    assert info["active"] is True
    assert info["sub"] == f"EE{citizen.code}" and info["client_id"] == rp.client_id
    assert _introspect(server, rp, tokens["refresh_token"])["active"] is True

    revoked = httpx.post(
        server.url + "/oauth/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(rp.client_id, rp.client_secret),  # type: ignore[arg-type]
    )
    assert revoked.status_code == 200
    # The whole grant is gone: the access token too.
    assert _introspect(server, rp, tokens["access_token"]) == {"active": False}
    userinfo = httpx.get(
        server.url + "/oauth/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 401


def test_rules(server: RunningServer, browser: Browser, citizen: Citizen) -> None:
    rp, other = register_rp(server), register_rp(server)
    tokens = login(server, browser, citizen, rp)
    # Another client learns nothing about the token and cannot revoke it.
    assert _introspect(server, other, tokens["access_token"]) == {"active": False}
    refused = httpx.post(
        server.url + "/oauth/revoke",
        data={"token": tokens["access_token"]},
        auth=(other.client_id, other.client_secret),  # type: ignore[arg-type]
    )
    assert refused.status_code == 400
    assert _introspect(server, rp, tokens["access_token"])["active"] is True
    # Unknown tokens: revocation succeeds quietly (RFC 7009 2.2), introspection says inactive.
    assert (
        httpx.post(
            server.url + "/oauth/revoke", data={"token": "nope"}, auth=(rp.client_id, rp.client_secret)
        ).status_code
        == 200
    )  # type: ignore[arg-type]
    assert _introspect(server, rp, "nope") == {"active": False}
    # Introspection needs client authentication.
    anonymous = httpx.post(server.url + "/oauth/introspect", data={"token": tokens["access_token"]})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    missing = httpx.post(server.url + "/oauth/introspect", data={}, auth=(rp.client_id, rp.client_secret))  # type: ignore[arg-type]
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
