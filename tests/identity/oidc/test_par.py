"""Pushed authorization requests (RFC 9126)."""

from __future__ import annotations

import httpx

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import REDIRECT, Browser, Citizen, callback_params, pkce, register_rp


def test_pushed_request_then_login(server: RunningServer, browser: Browser, citizen: Citizen) -> None:
    rp = register_rp(server)
    verifier, challenge = pkce()
    pushed = httpx.post(
        server.url + "/oauth/par",
        data={
            "response_type": "code",
            "scope": "openid",
            "redirect_uri": REDIRECT,
            "state": "st",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        auth=(rp.client_id, rp.client_secret),  # type: ignore[arg-type]
    )
    assert pushed.status_code == 201, pushed.text
    body = pushed.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:") and body["expires_in"] == 60

    to_login = browser.authorize({"client_id": rp.client_id, "request_uri": body["request_uri"]})
    assert to_login.status_code == 303
    back = browser.login_with_app(to_login.headers["location"], citizen)
    params = callback_params(back)
    assert params["state"] == "st" and params["iss"] == server.url
    token = httpx.post(
        server.url + "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=(rp.client_id, rp.client_secret),  # type: ignore[arg-type]
    )
    assert token.status_code == 200, token.text
    # The request_uri was single use.
    again = browser.authorize({"client_id": rp.client_id, "request_uri": body["request_uri"]})
    assert again.status_code == 400 and "location" not in again.headers


def test_pushed_request_checks(server: RunningServer) -> None:
    rp, other = register_rp(server), register_rp(server)
    bad_redirect = httpx.post(
        server.url + "/oauth/par",
        data={"response_type": "code", "scope": "openid", "redirect_uri": "https://evil.example/cb"},
        auth=(rp.client_id, rp.client_secret),  # type: ignore[arg-type]
    )
    assert bad_redirect.status_code == 400 and bad_redirect.json()["error"] == "invalid_request"
    no_auth = httpx.post(server.url + "/oauth/par", data={"response_type": "code", "client_id": rp.client_id})
    assert no_auth.status_code in (400, 401) and no_auth.json()["error"] == "invalid_client"
    pushed = httpx.post(
        server.url + "/oauth/par",
        data={"response_type": "code", "scope": "openid", "redirect_uri": REDIRECT},
        auth=(rp.client_id, rp.client_secret),  # type: ignore[arg-type]
    ).json()
    with httpx.Client(base_url=server.url) as browser:
        # Another client cannot use it.
        stolen = browser.get(
            "/oauth/authorize", params={"client_id": other.client_id, "request_uri": pushed["request_uri"]}
        )
        assert stolen.status_code == 400
        # A request_uri that is not ours is "not supported", sent back to the client.
        foreign = browser.get(
            "/oauth/authorize",
            params={
                "client_id": rp.client_id,
                "request_uri": "https://rp.example/request.jwt",
                "redirect_uri": REDIRECT,
            },
        )
        assert "error=request_uri_not_supported" in foreign.headers["location"]
