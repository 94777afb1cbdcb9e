"""Authorization codes: single use (also under concurrency), 60 s, bound to client and redirect URI."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from identity.oauth import grants
from identity.oauth.models import AuthorizationCode
from keys.dbapi import Tx
from keys.models import utcnow
from tests.conftest import RunningServer
from tests.identity.oidc.conftest import (
    Browser,
    Citizen,
    RelyingParty,
    code_request,
    database,
    exchange,
    token_request,
    userinfo,
)


def test_second_exchange_fails_and_revokes_the_first_tokens(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    code = browser.log_in(params, citizen)["code"]
    first = exchange(server, rp, code, verifier)
    assert first.status_code == 200, first.text
    access_token, refresh_token = first.json()["access_token"], first.json()["refresh_token"]
    assert userinfo(server, access_token).status_code == 200

    second = exchange(server, rp, code, verifier)

    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert "access_token" not in second.json()
    assert userinfo(server, access_token).status_code == 401
    refreshed = token_request(server, rp, {"grant_type": "refresh_token", "refresh_token": refresh_token})
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


def test_code_expires_after_60_seconds(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    """Time is controlled through the domain function (no clock over HTTP); the same code,
    still fresh, is then redeemed over HTTP to show it was expiry that refused it."""
    params, verifier = code_request(rp)
    code = browser.log_in(params, citizen)["code"]

    with database(server) as session:
        assert (
            grants.consume_code(Tx(session), code, rp.client_id, now=utcnow() + timedelta(seconds=61)) is None
        )

    assert exchange(server, rp, code, verifier).status_code == 200


def test_code_is_bound_to_its_client(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty, other_rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    code = browser.log_in(params, citizen)["code"]

    response = exchange(server, other_rp, code, verifier)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.json()


@pytest.mark.parametrize(
    "redirect_uri", ["https://rp.example/callback/other", None], ids=["other", "missing"]
)
def test_redirect_uri_must_equal_the_authorization_requests(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty, redirect_uri: str | None
) -> None:
    params, verifier = code_request(rp)
    code = browser.log_in(params, citizen)["code"]

    response = exchange(server, rp, code, verifier, redirect_uri=redirect_uri)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.json()


def test_concurrent_redemption_has_exactly_one_winner(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    code = browser.log_in(params, citizen)["code"]
    assert verifier is not None and rp.client_secret is not None
    n = 8
    start = threading.Barrier(n)
    results: list[httpx.Response] = []
    lock = threading.Lock()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": rp.redirect_uri,
    }

    def redeem() -> None:
        with httpx.Client(auth=(rp.client_id, rp.client_secret or ""), timeout=30) as http:
            start.wait()
            response = http.post(server.url + "/oauth/token", data=form)
        with lock:
            results.append(response)

    threads = [threading.Thread(target=redeem) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [400] * (n - 1), [r.text for r in results]
    assert {r.json()["error"] for r in results if r.status_code == 400} == {"invalid_grant"}


def test_a_parked_request_gives_one_code(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    """A resume completes its parked request (with the commit that stores its code):
    resuming it again gives no second code, only the page that says the login is over."""
    params, _ = code_request(rp)
    to_login = browser.authorize(params)
    back = browser.login_with_app(to_login.headers["location"], citizen)
    assert back.status_code == 303 and "code=" in back.headers["location"]
    before = _codes(server)
    again = browser.http.get(back.request.url)
    assert again.status_code == 400
    assert "location" not in again.headers
    assert _codes(server) == before


def _codes(server: RunningServer) -> int:
    with database(server) as session:
        return int(session.execute(select(func.count()).select_from(AuthorizationCode)).scalar_one())
