"""Dynamic registration (RFC 7591) with an independent client, and management (RFC 7592)."""

from __future__ import annotations

import secrets

import httpx
from oic.oic import Client
from oic.oic.message import AuthorizationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import REDIRECT, Browser, Citizen


def test_register_then_log_in_with_oic(server: RunningServer, browser: Browser, citizen: Citizen) -> None:
    client = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    client.provider_config(server.url)
    registration = client.register(
        client.provider_info["registration_endpoint"],
        redirect_uris=[REDIRECT],
        client_name="Dynamic service",
        token_endpoint_auth_method="client_secret_post",
        id_token_signed_response_alg="ES256",
    )
    assert registration["client_id"] and registration["client_secret"]
    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    pkce_args, verifier = client.add_code_challenge()
    url = client.construct_AuthorizationRequest(
        request_args={
            "response_type": "code",
            "scope": ["openid", "profile"],
            "nonce": nonce,
            "state": state,
            "redirect_uri": REDIRECT,
            **pkce_args,
        }
    ).request(client.authorization_endpoint)
    to_login = browser.http.get(url)
    back = browser.login_with_app(to_login.headers["location"], citizen)
    # A dynamically registered client is not first-party: the citizen is asked.
    assert back.headers["location"].startswith("/consent?request=")
    request_id = back.headers["location"].split("=", 1)[1]
    allowed = browser.http.post("/consent", data={"request": request_id, "decision": "allow"})
    assert allowed.status_code == 303, allowed.text
    final = browser.http.get(allowed.headers["location"])
    response = client.parse_response(
        AuthorizationResponse, info=final.headers["location"].split("?", 1)[1], sformat="urlencoded"
    )
    tokens = client.do_access_token_request(
        state=state,
        request_args={"code": response["code"], "code_verifier": verifier},
        authn_method="client_secret_post",
    )
    assert tokens["id_token"]["sub"] == f"EE{citizen.code}"
    assert tokens["id_token"].jws_header["alg"] == "ES256"


def test_manage_a_registration(server: RunningServer) -> None:
    admin = httpx.post(
        server.url + "/oauth/register", json={"redirect_uris": [REDIRECT], "scope": "openid admin"}
    )
    assert (
        admin.status_code == 400 and admin.json()["error"] == "invalid_client_metadata"
    )  # not for dynamic clients
    created = httpx.post(
        server.url + "/oauth/register",
        json={"redirect_uris": [REDIRECT], "client_name": "Managed", "scope": "openid"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["scope"] == "openid"
    uri, token = body["registration_client_uri"], body["registration_access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    read = httpx.get(uri, headers=headers)
    assert read.status_code == 200 and read.json()["client_name"] == "Managed"
    assert "client_secret" not in read.json()
    updated = httpx.put(
        uri,
        headers=headers,
        json={
            "client_id": body["client_id"],
            "redirect_uris": [REDIRECT, REDIRECT + "2"],
            "client_name": "Renamed",
        },
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["redirect_uris"] == [REDIRECT, REDIRECT + "2"]
    assert httpx.get(uri, headers={"Authorization": "Bearer wrong"}).status_code in (401, 403)
    assert httpx.delete(uri, headers=headers).status_code == 204
    assert httpx.get(uri, headers=headers).status_code in (401, 403)


def test_bad_metadata_is_refused(server: RunningServer) -> None:
    for metadata, fragment in (
        ({"redirect_uris": ["https://rp.example/cb#frag"]}, "redirect_uris"),
        ({"redirect_uris": [REDIRECT], "response_types": ["token"]}, "response_types"),
        ({"redirect_uris": [REDIRECT], "grant_types": ["password"]}, "grant_types"),
        ({"redirect_uris": [REDIRECT], "jwks_uri": "https://rp.example/jwks"}, "jwks"),
        ({"redirect_uris": [REDIRECT], "id_token_signed_response_alg": "none"}, ""),
        ({}, ""),
    ):
        response = httpx.post(server.url + "/oauth/register", json=metadata)
        assert response.status_code == 400, (metadata, response.text)
        assert response.json()["error"] in (
            "invalid_client_metadata",
            "invalid_redirect_uri",
            "invalid_request",
        )
        assert fragment in response.text
    not_json = httpx.post(
        server.url + "/oauth/register", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
