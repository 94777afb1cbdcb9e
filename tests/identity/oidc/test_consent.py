"""Consent: services not marked first-party ask the citizen once; the answer is remembered."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import (
    Browser,
    Citizen,
    RelyingParty,
    callback_params,
    code_request,
    id_token_of,
    register_rp,
)


@pytest.fixture(scope="module")
def third_party(server: RunningServer) -> RelyingParty:
    return register_rp(server, "--scope", "openid", "--scope", "profile", first_party=False)


def to_consent(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/consent?request="), location
    return location


def decide(browser: Browser, consent_location: str, decision: str) -> httpx.Response:
    """Show the consent page, then press a button on it; the response that leaves for the client."""
    page = browser.http.get(consent_location)
    assert page.status_code == 200
    request_id = consent_location.split("request=", 1)[1]
    assert f'value="{request_id}"' in page.text
    answered = browser.http.post("/consent", data={"request": request_id, "decision": decision})
    assert answered.status_code == 303, answered.text
    if decision != "allow":
        return answered
    return browser.http.get(answered.headers["location"])


def test_login_leads_to_the_consent_page(
    browser: Browser, citizen: Citizen, third_party: RelyingParty
) -> None:
    params, _ = code_request(third_party, scope="openid profile")
    to_login = browser.authorize(params)

    consent = to_consent(browser.login_with_app(to_login.headers["location"], citizen))

    page = browser.http.get(consent)
    assert page.status_code == 200
    assert "Tax and Customs Board" in page.text
    assert "given name" in page.text
    assert 'value="allow"' in page.text and 'value="deny"' in page.text


def test_allow_gives_a_code(
    server: RunningServer, browser: Browser, citizen: Citizen, third_party: RelyingParty
) -> None:
    params, verifier = code_request(third_party)
    consent = to_consent(browser.login_with_app(browser.authorize(params).headers["location"], citizen))

    back = decide(browser, consent, "allow")

    assert back.status_code == 303
    callback = callback_params(back)
    assert callback["state"] == params["state"] and callback["iss"] == server.url
    assert id_token_of(server, third_party, callback, verifier)["sub"] == citizen.sub


def test_consent_is_remembered_at_the_next_login(
    server: RunningServer,
    browser: Browser,
    browsers: list[Browser],
    citizen: Citizen,
    third_party: RelyingParty,
) -> None:
    params, _ = code_request(third_party, scope="openid profile")
    consent = to_consent(browser.login_with_app(browser.authorize(params).headers["location"], citizen))
    assert "code" in callback_params(decide(browser, consent, "allow"))
    later = Browser(server)  # a new browser: a new login, not the same session
    browsers.append(later)

    params, verifier = code_request(third_party, scope="openid profile")
    callback = later.log_in(params, citizen)  # straight back to the service

    assert id_token_of(server, third_party, callback, verifier)["given_name"] == "Mari-Liis"


def test_consent_covers_only_the_scopes_allowed(
    browser: Browser, citizen: Citizen, third_party: RelyingParty
) -> None:
    params, _ = code_request(third_party, scope="openid")
    consent = to_consent(browser.login_with_app(browser.authorize(params).headers["location"], citizen))
    assert "code" in callback_params(decide(browser, consent, "allow"))

    params, _ = code_request(third_party, scope="openid profile")

    to_consent(browser.authorize(params))


def test_deny_is_access_denied(
    server: RunningServer, browser: Browser, citizen: Citizen, third_party: RelyingParty
) -> None:
    params, _ = code_request(third_party)
    consent = to_consent(browser.login_with_app(browser.authorize(params).headers["location"], citizen))

    back = callback_params(decide(browser, consent, "deny"))

    assert back["error"] == "access_denied"
    assert back["state"] == params["state"] and back["iss"] == server.url
    assert "code" not in back
    to_consent(browser.authorize(code_request(third_party)[0]))  # nothing was remembered


def test_prompt_none_without_consent_is_consent_required(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty, third_party: RelyingParty
) -> None:
    browser.log_in(code_request(rp)[0], citizen)  # a session from a first-party service
    params, _ = code_request(third_party, prompt="none")

    back = callback_params(browser.authorize(params))

    assert back["error"] == "consent_required"
    assert back["state"] == params["state"] and back["iss"] == server.url
