"""RP-initiated logout and back-channel logout."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode

import httpx
import jwt
import pytest

from tests.conftest import RunningServer
from tests.identity.oidc._flows import login
from tests.identity.oidc.conftest import Browser, Citizen, register_rp


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).received.append(parse_qs(body)["logout_token"][0])
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[str]]]:
    _Receiver.received = []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/backchannel", _Receiver.received
    httpd.shutdown()
    httpd.server_close()


def test_rp_initiated_and_backchannel_logout(
    server: RunningServer, browser: Browser, citizen: Citizen, receiver: tuple[str, list[str]]
) -> None:
    uri, received = receiver
    rp = register_rp(
        server, "--post-logout-redirect-uri", "https://rp.example/bye", "--backchannel-logout-uri", uri
    )
    tokens = login(server, browser, citizen, rp)
    id_token = tokens["id_token"]
    sid = jwt.decode(id_token, options={"verify_signature": False})["sid"]

    response = browser.http.get(
        "/oauth/logout?"
        + urlencode(
            {"id_token_hint": id_token, "post_logout_redirect_uri": "https://rp.example/bye", "state": "s1"}
        )
    )
    assert response.status_code == 303
    assert response.headers["location"] == "https://rp.example/bye?state=s1"
    assert browser.http.get("/api/v1/me").status_code == 401

    assert len(received) == 1
    jwks = httpx.get(server.url + "/oauth/jwks").json()
    header = jwt.get_unverified_header(received[0])
    assert header["typ"] == "logout+jwt"
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        received[0], key.key, algorithms=[header["alg"]], audience=rp.client_id, issuer=server.url
    )
    assert claims["sid"] == sid and claims["sub"] == f"EE{citizen.code}"
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
    assert "nonce" not in claims

    # After logout, prompt=none needs a new login.
    again = browser.authorize(
        {
            "client_id": rp.client_id,
            "response_type": "code",
            "scope": "openid",
            "redirect_uri": "https://rp.example/callback",
            "prompt": "none",
            "state": "x",
        }
    )
    assert "error=login_required" in again.headers["location"]


def test_bad_post_logout_redirect_is_not_followed(
    server: RunningServer, browser: Browser, citizen: Citizen
) -> None:
    rp = register_rp(server, "--post-logout-redirect-uri", "https://rp.example/bye")
    tokens = login(server, browser, citizen, rp)
    for target in ("https://evil.example/bye", "https://rp.example/bye/", "https://rp.example/bye?x=1"):
        response = browser.http.get(
            "/oauth/logout?"
            + urlencode({"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": target})
        )
        assert response.status_code == 400 and "location" not in response.headers
    forged = browser.http.get(
        "/oauth/logout?" + urlencode({"id_token_hint": tokens["id_token"][:-4] + "AAAA"})
    )
    assert forged.status_code == 400
    # Still logged in: nothing was ended by the refused requests.
    assert browser.http.get("/api/v1/me").status_code == 200
    plain = browser.http.get("/oauth/logout")
    assert plain.status_code == 200 and "logged out" in plain.text
    assert browser.http.get("/api/v1/me").status_code == 401
