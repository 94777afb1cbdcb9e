"""Refresh tokens: rotation on every use, reuse revokes the grant, bound to the client, scope."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import (
    Browser,
    Citizen,
    RelyingParty,
    code_request,
    token_request,
    tokens_for,
    userinfo,
)


def first_tokens(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty, scope: str = "openid"
) -> dict[str, Any]:
    params, verifier = code_request(rp, scope=scope)
    tokens = tokens_for(server, rp, browser.log_in(params, citizen), verifier)
    assert tokens["refresh_token"]
    return tokens


def refresh(server: RunningServer, rp: RelyingParty, refresh_token: str, **extra: str) -> httpx.Response:
    return token_request(server, rp, {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra})


def test_refresh_gives_new_tokens_and_rotates(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    tokens = first_tokens(server, browser, citizen, rp)

    response = refresh(server, rp, tokens["refresh_token"])

    assert response.status_code == 200, response.text
    new = response.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["access_token"] != tokens["access_token"]
    assert userinfo(server, new["access_token"]).json()["sub"] == citizen.sub
    assert refresh(server, rp, new["refresh_token"]).status_code == 200


def test_reusing_a_rotated_token_revokes_the_grant(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    tokens = first_tokens(server, browser, citizen, rp)
    rotated = refresh(server, rp, tokens["refresh_token"])
    assert rotated.status_code == 200
    newest = rotated.json()
    assert userinfo(server, newest["access_token"]).status_code == 200

    reuse = refresh(server, rp, tokens["refresh_token"])

    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    assert userinfo(server, newest["access_token"]).status_code == 401
    assert refresh(server, rp, newest["refresh_token"]).json()["error"] == "invalid_grant"


def test_another_client_cannot_use_the_refresh_token(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty, other_rp: RelyingParty
) -> None:
    tokens = first_tokens(server, browser, citizen, rp)

    response = refresh(server, other_rp, tokens["refresh_token"])

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.json()


def test_narrower_scope_is_granted(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    tokens = first_tokens(server, browser, citizen, rp, scope="openid profile")
    assert "given_name" in userinfo(server, tokens["access_token"]).json()

    response = refresh(server, rp, tokens["refresh_token"], scope="openid")

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "openid"
    assert userinfo(server, response.json()["access_token"]).json() == {"sub": citizen.sub}


def test_broader_scope_is_invalid_scope(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    tokens = first_tokens(server, browser, citizen, rp, scope="openid")

    response = refresh(server, rp, tokens["refresh_token"], scope="openid profile")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert "access_token" not in response.json()
