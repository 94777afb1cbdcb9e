"""A citizen sees and withdraws the consents they gave; the service's tokens die with it."""

from __future__ import annotations

import httpx

from tests.conftest import RunningServer
from tests.identity.oidc._flows import login
from tests.identity.oidc.conftest import Browser, Citizen, register_rp


def test_withdraw_consent(server: RunningServer, browser: Browser, citizen: Citizen) -> None:
    rp = register_rp(server, first_party=False)
    params = {
        "client_id": rp.client_id,
        "response_type": "code",
        "scope": "openid profile",
        "redirect_uri": "https://rp.example/callback",
        "state": "s",
    }
    # The first login asks for consent.
    from tests.identity.oidc.conftest import pkce

    verifier, challenge = pkce()
    params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    back = browser.login_with_app(browser.authorize(params).headers["location"], citizen)
    assert back.headers["location"].startswith("/consent?request=")
    allowed = browser.http.post(
        "/consent", data={"request": back.headers["location"].split("=", 1)[1], "decision": "allow"}
    )
    final = browser.http.get(allowed.headers["location"])
    assert "code=" in final.headers["location"]

    listed = browser.http.get("/api/v1/me/consents").json()
    assert [c["client_id"] for c in listed] == [rp.client_id]
    assert listed[0]["client_name"] == "Tax and Customs Board"

    tokens = login(server, browser, citizen, rp)  # remembered: no consent page this time
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert httpx.get(server.url + "/oauth/userinfo", headers=bearer).status_code == 200

    assert browser.http.delete(f"/api/v1/me/consents/{rp.client_id}").status_code == 204
    assert browser.http.get("/api/v1/me/consents").json() == []
    assert httpx.get(server.url + "/oauth/userinfo", headers=bearer).status_code == 401
    assert browser.http.delete(f"/api/v1/me/consents/{rp.client_id}").status_code == 404
    # The next login asks again.
    again = browser.authorize(params | {"state": "t"})
    assert again.headers["location"].startswith("/consent?request=")
