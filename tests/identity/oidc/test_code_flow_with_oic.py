"""The whole code flow driven by an independent OpenID Connect library (pyoidc, ``oic``)."""

from __future__ import annotations

import secrets

from oic.oic import Client
from oic.oic.message import AuthorizationResponse, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import REDIRECT, Browser, Citizen, register_rp


def test_login_with_oic_client(server: RunningServer, browser: Browser, citizen: Citizen) -> None:
    rp = register_rp(server, "--scope", "openid", "--scope", "profile")
    client = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    client.provider_config(server.url)  # discovery and JWKS
    client.store_registration_info(
        RegistrationResponse(client_id=rp.client_id, client_secret=rp.client_secret, redirect_uris=[REDIRECT])
    )
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    args = {
        "client_id": rp.client_id,
        "response_type": "code",
        "scope": ["openid", "profile"],
        "nonce": nonce,
        "redirect_uri": REDIRECT,
        "state": state,
    }
    pkce_args, verifier = client.add_code_challenge()
    args.update(pkce_args)
    url = client.construct_AuthorizationRequest(request_args=args).request(client.authorization_endpoint)

    to_login = browser.http.get(url)
    assert to_login.status_code == 303 and to_login.headers["location"].startswith("/login?request=")
    back = browser.login_with_app(to_login.headers["location"], citizen)
    assert back.status_code == 303

    response = client.parse_response(
        AuthorizationResponse, info=back.headers["location"].split("?", 1)[1], sformat="urlencoded"
    )
    assert response["state"] == state
    assert response["iss"] == server.url
    tokens = client.do_access_token_request(
        state=state,
        request_args={"code": response["code"], "code_verifier": verifier, "redirect_uri": REDIRECT},
        authn_method="client_secret_basic",
    )
    id_token = tokens["id_token"]  # oic has verified signature (JWKS), iss, aud, exp and nonce
    assert id_token["sub"] == f"EE{citizen.code}"
    assert id_token["nonce"] == nonce
    assert id_token["acr"] == "substantial" and id_token["amr"] == ["swk", "pin", "mfa"]
    assert id_token["family_name"] == "Männik"
    assert id_token["profile_attributes"]["given_name"] == "Mari-Liis"
    assert {"auth_time", "sid", "at_hash"} <= set(id_token.keys())

    userinfo = client.do_user_info_request(state=state)
    assert userinfo["sub"] == f"EE{citizen.code}"
    assert userinfo["birthdate"] == "1980-01-01"
