"""UserInfo: bearer in the header (GET, POST) or the form body (POST); claims by scope."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import Browser, Citizen, RelyingParty, code_request, tokens_for, userinfo

PROFILE = {
    "given_name": "Mari-Liis",
    "family_name": "Männik",
    "birthdate": "1980-01-01",
    "profile_attributes": {"date_of_birth": "1980-01-01", "given_name": "Mari-Liis", "family_name": "Männik"},
}


def access_token(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty, **extra: str
) -> str:
    params, verifier = code_request(rp, **extra)
    return str(tokens_for(server, rp, browser.log_in(params, citizen), verifier)["access_token"])


def test_get_with_bearer_header(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    token = access_token(server, browser, citizen, rp, scope="openid profile")

    response = userinfo(server, token)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"sub": citizen.sub, **PROFILE}


def test_post_with_token_in_the_form_body(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    token = access_token(server, browser, citizen, rp)

    response = httpx.post(server.url + "/oauth/userinfo", data={"access_token": token})

    assert response.status_code == 200
    assert response.json() == {"sub": citizen.sub}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["none", "unknown", "not-bearer"],
)
def test_bad_token_is_401_with_www_authenticate(server: RunningServer, headers: dict[str, str]) -> None:
    response = httpx.get(server.url + "/oauth/userinfo", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "sub" not in response.json()


def test_openid_scope_alone_gives_only_sub(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    token = access_token(server, browser, citizen, rp, scope="openid")

    assert userinfo(server, token).json() == {"sub": citizen.sub}


def test_claims_parameter_adds_a_claim_to_userinfo(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    asked = json.dumps({"userinfo": {"given_name": {"essential": True}}})
    token = access_token(server, browser, citizen, rp, scope="openid", claims=asked)

    assert userinfo(server, token).json() == {"sub": citizen.sub, "given_name": "Mari-Liis"}
