"""PKCE (RFC 7636, RFC 9700 §4.8): S256 only, required for public clients, verifier checked."""

from __future__ import annotations

import pytest

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import (
    Browser,
    Citizen,
    RelyingParty,
    callback_params,
    code_request,
    exchange,
    register_rp,
)


@pytest.fixture(scope="module")
def public_rp(server: RunningServer) -> RelyingParty:
    rp = register_rp(server, public=True)
    assert rp.client_secret is None
    return rp


def test_s256_lets_a_public_client_redeem_its_code(
    server: RunningServer, browser: Browser, citizen: Citizen, public_rp: RelyingParty
) -> None:
    params, verifier = code_request(public_rp)
    callback = browser.log_in(params, citizen)

    response = exchange(server, public_rp, callback["code"], verifier)  # client_id only, no secret

    assert response.status_code == 200, response.text
    assert response.json()["token_type"].lower() == "bearer"
    assert response.json()["id_token"]


def test_plain_method_is_refused_with_a_redirect(
    server: RunningServer, browser: Browser, rp: RelyingParty
) -> None:
    params, _ = code_request(rp, with_pkce=False, code_challenge="A" * 43, code_challenge_method="plain")

    response = browser.authorize(params)

    assert response.status_code in (302, 303)
    back = callback_params(response)
    assert back["error"] == "invalid_request"
    assert back["state"] == params["state"]
    assert back["iss"] == server.url
    assert "code" not in back


def test_challenge_without_method_is_refused(
    server: RunningServer, browser: Browser, rp: RelyingParty
) -> None:
    """RFC 7636 would default to ``plain``; we support only S256, so the method must be named."""
    params, _ = code_request(rp)
    del params["code_challenge_method"]

    back = callback_params(browser.authorize(params))

    assert back["error"] == "invalid_request"
    assert back["state"] == params["state"]
    assert back["iss"] == server.url


def test_public_client_without_challenge_is_refused(
    server: RunningServer, browser: Browser, public_rp: RelyingParty
) -> None:
    params, _ = code_request(public_rp, with_pkce=False)

    response = browser.authorize(params)

    assert response.status_code in (302, 303)
    back = callback_params(response)
    assert back["error"] == "invalid_request"
    assert back["state"] == params["state"]
    assert back["iss"] == server.url


def test_wrong_verifier_is_invalid_grant(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    callback = browser.log_in(params, citizen)
    assert verifier is not None

    response = exchange(server, rp, callback["code"], verifier[::-1])

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.json()


def test_missing_verifier_for_a_challenged_code_is_refused(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, _ = code_request(rp)
    callback = browser.log_in(params, citizen)

    response = exchange(server, rp, callback["code"], None)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "access_token" not in response.json()


def test_verifier_for_a_code_issued_without_challenge_is_refused(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    """RFC 9700 §4.8: a confidential client may skip PKCE, but then must not send a verifier."""
    params, _ = code_request(rp, with_pkce=False)
    callback = browser.log_in(params, citizen)

    response = exchange(server, rp, callback["code"], "v" * 43)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "access_token" not in response.json()
