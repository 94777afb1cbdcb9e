"""The authorization endpoint's answers: error page or redirect, exact redirect URIs, RFC 9207 ``iss``."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import (
    REDIRECT,
    Browser,
    Citizen,
    RelyingParty,
    callback_params,
    code_request,
    exchange,
    register_rp,
    tokens_for,
)

ODD_STATE = "a b&c=d/é?#%25+~\"'<>"


def assert_error_page(response: httpx.Response) -> None:
    """The citizen is shown an error and sent nowhere."""
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


def assert_error_redirect(server: RunningServer, response: httpx.Response, error: str, state: str) -> None:
    assert response.status_code in (302, 303)
    back = callback_params(response)
    assert back["error"] == error
    assert back["state"] == state
    assert back["iss"] == server.url
    assert "code" not in back


@pytest.fixture(scope="module")
def two_uri_rp(server: RunningServer) -> RelyingParty:
    return register_rp(server, "--redirect-uri", "https://rp.example/second")


# Client and redirect URI: checked before anything is redirected.


def test_unknown_client_gets_an_error_page(browser: Browser, rp: RelyingParty) -> None:
    params, _ = code_request(rp, client_id="no-such-client")

    assert_error_page(browser.authorize(params))


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        REDIRECT + "/",  # exact match: no prefix,
        REDIRECT + "?x=1",  # no added query,
        REDIRECT.upper(),  # no case folding
    ],
)
def test_unregistered_redirect_uri_gets_an_error_page(
    browser: Browser, rp: RelyingParty, redirect_uri: str
) -> None:
    params, _ = code_request(rp, redirect_uri=redirect_uri)

    assert_error_page(browser.authorize(params))


def test_missing_redirect_uri_uses_the_only_registered_one(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    del params["redirect_uri"]

    callback = browser.log_in(params, citizen)  # asserts the callback goes to REDIRECT

    response = exchange(server, rp, callback["code"], verifier, redirect_uri=None)
    assert response.status_code == 200, response.text


def test_missing_redirect_uri_with_two_registered_gets_an_error_page(
    browser: Browser, two_uri_rp: RelyingParty
) -> None:
    params, _ = code_request(two_uri_rp)
    del params["redirect_uri"]

    assert_error_page(browser.authorize(params))


# Everything else goes back to the client, with state and iss.


def test_token_response_type_is_unsupported(
    server: RunningServer, browser: Browser, rp: RelyingParty
) -> None:
    params, _ = code_request(rp, response_type="token")

    assert_error_redirect(server, browser.authorize(params), "unsupported_response_type", params["state"])


@pytest.mark.parametrize(
    ("name", "error"),
    [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")],
)
def test_request_objects_are_refused_not_ignored(
    server: RunningServer, browser: Browser, rp: RelyingParty, name: str, error: str
) -> None:
    value = "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9." if name == "request" else "https://rp.example/r/1"
    params, _ = code_request(rp, **{name: value})

    assert_error_redirect(server, browser.authorize(params), error, params["state"])


def test_state_round_trips_exactly_on_an_error(
    server: RunningServer, browser: Browser, rp: RelyingParty
) -> None:
    params, _ = code_request(rp, response_type="token", state=ODD_STATE)

    assert_error_redirect(server, browser.authorize(params), "unsupported_response_type", ODD_STATE)


def test_success_has_iss_and_state_exactly(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp, state=ODD_STATE)

    callback = browser.log_in(params, citizen)

    assert callback["iss"] == server.url
    assert callback["state"] == ODD_STATE
    tokens_for(server, rp, callback, verifier)


def test_unknown_parameters_are_ignored(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp, foo="bar", x_vendor_extension="1", display="popup")

    callback = browser.log_in(params, citizen)

    assert "error" not in callback
    tokens_for(server, rp, callback, verifier)


def test_post_works_and_answers_with_303(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    browser.log_in(code_request(rp)[0], citizen)  # a login session in the browser
    params, verifier = code_request(rp)

    response = browser.http.post("/oauth/authorize", data=params)

    assert response.status_code == 303
    assert urlsplit(response.headers["location"]).path == urlsplit(REDIRECT).path
    callback = callback_params(response)
    assert callback["iss"] == server.url and callback["state"] == params["state"]
    tokens_for(server, rp, callback, verifier)


def test_post_without_a_session_goes_to_login_with_303(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)

    to_login = browser.http.post("/oauth/authorize", data=params)

    assert to_login.status_code == 303
    assert to_login.headers["location"].startswith("/login?request=")
    back = browser.login_with_app(to_login.headers["location"], citizen)
    assert back.status_code == 303
    tokens_for(server, rp, callback_params(back), verifier)
