"""The admin API: an OAuth 2.0 client-credentials token with the admin scope registers citizens."""

from __future__ import annotations

import json

import httpx

from tests.conftest import RunningServer
from tests.identity.test_login_with_app import fresh_code


def _client(server: RunningServer, *scopes: str) -> tuple[str, str]:
    args = ["client", "add", "--name", "Registry office", "--json"]
    for scope in scopes:
        args += ["--scope", scope]
    created = json.loads(server.env.run_eid(*args).stdout)
    assert created["grant_types"] == ["client_credentials"]
    return created["client_id"], created["client_secret"]


def _token(server: RunningServer, client_id: str, secret: str, **extra: str) -> httpx.Response:
    return httpx.post(
        server.url + "/oauth/token",
        data={"grant_type": "client_credentials", **extra},
        auth=(client_id, secret),
    )


def test_register_a_citizen_with_a_client_credentials_token(server: RunningServer) -> None:
    client_id, secret = _client(server, "admin")
    response = _token(server, client_id, secret, scope="admin")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    token = response.json()
    assert token["token_type"].lower() == "bearer" and token["scope"] == "admin"
    assert "refresh_token" not in token

    code = fresh_code()
    created = httpx.post(
        server.url + "/api/v1/admin/citizens",
        json={"id_code": code, "given_name": "Mari", "family_name": "Tamm"},
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["citizen"]["personal_code"] == code
    assert len(body["activation_code"]) == 14

    again = httpx.post(
        server.url + "/api/v1/admin/citizens",
        json={"id_code": code, "given_name": "Mari", "family_name": "Tamm"},
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


def test_secret_in_the_body_works_too(server: RunningServer) -> None:
    client_id, secret = _client(server, "admin")
    response = httpx.post(
        server.url + "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "admin",
            "client_id": client_id,
            "client_secret": secret,
        },
    )
    assert response.status_code == 200, response.text


def test_refusals(server: RunningServer) -> None:
    client_id, secret = _client(server, "admin")
    wrong = _token(server, client_id, secret + "x", scope="admin")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    unknown_scope = _token(server, client_id, secret, scope="wizardry")
    assert unknown_scope.status_code == 400 and unknown_scope.json()["error"] == "invalid_scope"
    # A scope the client may not have is left out of the token (RFC 6749 3.3).
    narrowed = _token(server, client_id, secret, scope="openid admin")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "admin"
    unsupported = _token(server, client_id, secret, grant_type="password")
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"

    body = {"id_code": fresh_code(), "given_name": "A", "family_name": "B"}
    no_token = httpx.post(server.url + "/api/v1/admin/citizens", json=body)
    assert no_token.status_code == 401 and no_token.headers["content-type"] == "application/problem+json"
    bogus = httpx.post(
        server.url + "/api/v1/admin/citizens", json=body, headers={"Authorization": "Bearer nope"}
    )
    assert bogus.status_code == 401

    other_id, other_secret = _client(server)  # no admin scope
    token = _token(server, other_id, other_secret).json()["access_token"]
    forbidden = httpx.post(
        server.url + "/api/v1/admin/citizens", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert forbidden.status_code == 403
    assert "admin" in forbidden.json()["detail"]

    admin = _token(server, client_id, secret, scope="admin").json()["access_token"]
    bad_code = httpx.post(
        server.url + "/api/v1/admin/citizens",
        json=body | {"id_code": "38001085719"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert bad_code.status_code == 422 and "check digit" in bad_code.json()["detail"]
