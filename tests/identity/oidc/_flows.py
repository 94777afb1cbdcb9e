"""A complete login for tests that need tokens: authorize, approve in the app, exchange."""

from __future__ import annotations

import secrets

import httpx

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import REDIRECT, Browser, Citizen, RelyingParty, callback_params, pkce


def login(
    server: RunningServer,
    browser: Browser,
    citizen: Citizen,
    rp: RelyingParty,
    *,
    scope: str = "openid profile",
) -> dict[str, str]:
    verifier, challenge = pkce()
    params = {
        "client_id": rp.client_id,
        "response_type": "code",
        "scope": scope,
        "redirect_uri": REDIRECT,
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    first = browser.authorize(params)
    if first.headers["location"].startswith("/login"):
        first = browser.login_with_app(first.headers["location"], citizen)
    code = callback_params(first)["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    auth = (rp.client_id, rp.client_secret) if rp.client_secret else None
    if auth is None:
        data["client_id"] = rp.client_id
    response = httpx.post(server.url + "/oauth/token", data=data, auth=auth)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return dict(response.json())
