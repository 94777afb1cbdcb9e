"""ID tokens: signature and key (checked with PyJWT and the published JWKS), claims, nonce."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import httpx
import jwt
import pytest

from identity.oauth import clients
from tests.conftest import RunningServer
from tests.identity.oidc.conftest import (
    REDIRECT,
    Browser,
    Citizen,
    RelyingParty,
    code_request,
    database,
    id_token_of,
    jwks,
    tokens_for,
    verify_id_token,
)


@pytest.fixture(scope="module")
def es256_rp(server: RunningServer) -> RelyingParty:
    """A client that registered ``id_token_signed_response_alg=ES256`` (``eid client add`` has
    no option for it; dynamic registration would store the same metadata)."""
    with database(server) as session:
        created = clients.register(
            session,
            name="ES256 service",
            redirect_uris=[REDIRECT],
            scopes=["openid", "profile"],
            first_party=True,
            extra_metadata={"id_token_signed_response_alg": "ES256"},
            actor="tests",
        )
    return RelyingParty(created.client.client_id, created.client_secret)


def test_nonce_is_absent_unless_sent_and_exact_when_sent(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    without = id_token_of(server, rp, browser.log_in(params, citizen), verifier)

    nonce = "n-0S6_WzA2Mj é+/=?&"
    params, verifier = code_request(rp, nonce=nonce)
    with_nonce = id_token_of(server, rp, browser.authorize_silently(params), verifier)

    assert "nonce" not in without
    assert with_nonce["nonce"] == nonce


def test_rs256_by_default_with_a_kid_in_the_jwks(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    id_token = tokens_for(server, rp, browser.log_in(params, citizen), verifier)["id_token"]

    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256"
    published = {key.key_id: key for key in jwks(server).keys}
    assert header["kid"] in published
    assert published[header["kid"]].key_type == "RSA"
    assert verify_id_token(server, id_token, rp)["sub"] == citizen.sub


def test_es256_when_the_client_registered_it(
    server: RunningServer, browser: Browser, citizen: Citizen, es256_rp: RelyingParty
) -> None:
    params, verifier = code_request(es256_rp)
    id_token = tokens_for(server, es256_rp, browser.log_in(params, citizen), verifier)["id_token"]

    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "ES256"
    published = {key.key_id: key for key in jwks(server).keys}
    assert published[header["kid"]].key_type == "EC"
    assert verify_id_token(server, id_token, es256_rp)["sub"] == citizen.sub


def test_jwks_never_offers_alg_none(server: RunningServer) -> None:
    algs = {key.algorithm_name for key in jwks(server).keys}
    discovery = httpx.get(server.url + "/.well-known/openid-configuration").json()

    assert algs == {"RS256", "ES256"}
    assert "none" not in discovery["id_token_signing_alg_values_supported"]


def test_claims(server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty) -> None:
    params, verifier = code_request(rp)
    before = int(time.time())
    tokens = tokens_for(server, rp, browser.log_in(params, citizen), verifier)
    after = int(time.time())

    claims = verify_id_token(server, tokens["id_token"], rp)

    assert claims["iss"] == server.url
    assert claims["sub"] == citizen.sub
    assert claims["aud"] in (rp.client_id, [rp.client_id])
    assert before - 2 <= claims["iat"] <= after + 2
    assert claims["exp"] > claims["iat"]
    assert before - 5 <= claims["auth_time"] <= claims["iat"]
    assert claims["acr"] == "substantial"
    assert claims["amr"] == ["swk", "pin", "mfa"]
    assert isinstance(claims["sid"], str) and claims["sid"]
    digest = hashlib.sha256(tokens["access_token"].encode("ascii")).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_claims_parameter_adds_a_claim_to_the_id_token(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)  # scope openid only
    plain = id_token_of(server, rp, browser.log_in(params, citizen), verifier)

    asked = json.dumps({"id_token": {"given_name": {"essential": True}}})
    params, verifier = code_request(rp, claims=asked)
    with_claims = id_token_of(server, rp, browser.authorize_silently(params), verifier)

    assert "given_name" not in plain
    assert with_claims["given_name"] == "Mari-Liis"
    assert "family_name" not in with_claims


@pytest.mark.parametrize(
    "claims",
    [
        "not json",
        "[1, 2]",
        pytest.param('{"id_token": ["given_name"]}', id="member-not-an-object"),
    ],
)
def test_malformed_claims_parameter_is_invalid_request(
    server: RunningServer, browser: Browser, rp: RelyingParty, claims: str
) -> None:
    params, _ = code_request(rp, claims=claims)

    back = browser.authorize_silently(params)

    assert back["error"] == "invalid_request"
    assert back["state"] == params["state"] and back["iss"] == server.url
