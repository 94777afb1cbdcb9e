"""The whole OpenID Connect flow with independent programs on both sides: pyoidc (`oic`)
as the relying party, the real `eid-app` approving, refresh, revocation and logout."""

from __future__ import annotations

import secrets
from contextlib import closing
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from oic.oic import Client
from oic.oic.message import AuthorizationResponse, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import REDIRECT, register_rp
from tests.wallet.test_end_to_end import app, enrol


def test_oidc_login_approved_in_eid_app(server: RunningServer, tmp_path: Path) -> None:
    wallet = tmp_path / "wallet"
    code, _ = enrol(server, wallet)
    rp = register_rp(server, "--scope", "openid", "--scope", "profile", "--scope", "offline_access")
    client = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    client.provider_config(server.url)
    client.store_registration_info(
        RegistrationResponse(client_id=rp.client_id, client_secret=rp.client_secret, redirect_uris=[REDIRECT])
    )
    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    pkce_args, verifier = client.add_code_challenge()
    url = client.construct_AuthorizationRequest(
        request_args={
            "response_type": "code",
            "scope": ["openid", "profile", "offline_access"],
            "nonce": nonce,
            "state": state,
            "redirect_uri": REDIRECT,
            "login_hint": f"EE{code}",
            **pkce_args,
        }
    ).request(client.authorization_endpoint)

    with closing(httpx.Client(base_url=server.url)) as browser:
        to_login = browser.get(url)
        login_page = browser.get(to_login.headers["location"])
        assert f'value="{code}"' in login_page.text  # login_hint prefilled
        started = browser.post("/api/v1/auth/app", json={"personal_code": code}).json()
        approved = app(wallet, "approve", "--pin", "1234", "--wait", "10", "--json")
        assert '"completed"' in approved.stdout
        assert browser.get(f"/api/v1/auth/app/{started['request_id']}").json()["state"] == "completed"
        request_id = parse_qs(urlsplit(to_login.headers["location"]).query)["request"][0]
        back = browser.get(f"/oauth/authorize/resume?request={request_id}")

    response = client.parse_response(
        AuthorizationResponse, info=back.headers["location"].split("?", 1)[1], sformat="urlencoded"
    )
    tokens = client.do_access_token_request(
        state=state,
        request_args={"code": response["code"], "code_verifier": verifier},
        authn_method="client_secret_basic",
    )
    assert tokens["id_token"]["sub"] == f"EE{code}" and tokens["id_token"]["nonce"] == nonce
    assert client.do_user_info_request(state=state)["given_name"] == "Jaak-Kristjan"

    refreshed = client.do_access_token_refresh(state=state, authn_method="client_secret_basic")
    assert refreshed["access_token"] != tokens["access_token"]
    assert refreshed["refresh_token"] != tokens["refresh_token"]

    revoked = httpx.post(
        server.url + "/oauth/revoke",
        data={"token": refreshed["refresh_token"]},
        auth=(rp.client_id, rp.client_secret),  # type: ignore[arg-type]
    )
    assert revoked.status_code == 200
    userinfo = httpx.get(
        server.url + "/oauth/userinfo", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
    )
    assert userinfo.status_code == 401
