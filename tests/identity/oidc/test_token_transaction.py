"""A grant at the token endpoint is one write transaction (code or refresh token taken, new
tokens stored, one commit). These tests hold it to what separate commits guaranteed: a code
is used up by a refused exchange too, and concurrent uses of one refresh token leave exactly
one winner and a revoked grant."""

from __future__ import annotations

import threading

import httpx

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import (
    Browser,
    Citizen,
    RelyingParty,
    code_request,
    exchange,
    token_request,
    tokens_for,
    userinfo,
)


def test_a_code_refused_for_its_verifier_is_used_up(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    code = browser.log_in(params, citizen)["code"]
    assert verifier is not None

    wrong = exchange(server, rp, code, verifier[::-1])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    right = exchange(server, rp, code, verifier)
    assert right.status_code == 400 and right.json()["error"] == "invalid_grant"
    assert "access_token" not in right.json()


def test_concurrent_refreshes_leave_one_winner_and_revoke_the_grant(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    tokens = tokens_for(server, rp, browser.log_in(params, citizen), verifier)
    refresh_token = tokens["refresh_token"]
    n = 6
    start = threading.Barrier(n)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def refresh() -> None:
        with httpx.Client(auth=(rp.client_id, rp.client_secret or ""), timeout=30) as http:
            start.wait()
            response = http.post(
                server.url + "/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            )
        with lock:
            results.append(response)

    threads = [threading.Thread(target=refresh) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [400] * (n - 1), [r.text for r in results]
    assert {r.json()["error"] for r in results if r.status_code == 400} == {"invalid_grant"}
    winner = next(r.json() for r in results if r.status_code == 200)
    # A copy of the refresh token was used again: the whole grant is revoked, the winner's too.
    assert userinfo(server, winner["access_token"]).status_code == 401
    again = token_request(
        server, rp, {"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]}
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
