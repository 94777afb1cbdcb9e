"""Authentication request parameters: prompt, max_age, acr_values, login_hint, ui_locales, id_token_hint."""

from __future__ import annotations

import time

import pytest

from tests.conftest import RunningServer
from tests.identity.oidc.conftest import (
    Browser,
    Citizen,
    RelyingParty,
    callback_params,
    code_request,
    enrol_citizen,
    id_token_of,
    tokens_for,
)


def goes_to_login(browser: Browser, params: dict[str, str]) -> str:
    response = browser.authorize(params)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/login?request="), location
    return location


# prompt=none and single sign-on.


def test_prompt_none_without_a_session_is_login_required(
    server: RunningServer, browser: Browser, rp: RelyingParty
) -> None:
    params, _ = code_request(rp, prompt="none")

    back = browser.authorize_silently(params)

    assert back["error"] == "login_required"
    assert back["state"] == params["state"] and back["iss"] == server.url
    assert "code" not in back


def test_prompt_none_with_a_session_is_silent_for_the_same_sub(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    first = id_token_of(server, rp, browser.log_in(params, citizen), verifier)

    params, verifier = code_request(rp, prompt="none")
    back = browser.authorize_silently(params)

    assert back["state"] == params["state"] and back["iss"] == server.url
    again = id_token_of(server, rp, back, verifier)
    assert again["sub"] == first["sub"] == citizen.sub
    assert again["sid"] == first["sid"]
    assert again["auth_time"] == first["auth_time"]


def test_second_service_logs_in_without_a_new_approval(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty, other_rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    first = id_token_of(server, rp, browser.log_in(params, citizen), verifier)

    params, verifier = code_request(other_rp)
    second = id_token_of(server, other_rp, browser.authorize_silently(params), verifier)

    assert second["sub"] == first["sub"] == citizen.sub
    assert second["aud"] == other_rp.client_id
    assert second["sid"] == first["sid"]


# Re-authentication: prompt=login and max_age.


def test_prompt_login_authenticates_again(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    first = id_token_of(server, rp, browser.log_in(params, citizen), verifier)
    time.sleep(1.1)  # auth_time has whole seconds

    params, verifier = code_request(rp, prompt="login")
    back = browser.login_with_app(goes_to_login(browser, params), citizen)

    again = id_token_of(server, rp, callback_params(back), verifier)
    assert again["sub"] == first["sub"]
    assert again["auth_time"] > first["auth_time"]


def test_max_age_exceeded_authenticates_again(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    first = id_token_of(server, rp, browser.log_in(params, citizen), verifier)
    time.sleep(2.5)

    params, verifier = code_request(rp, max_age="2")
    back = browser.login_with_app(goes_to_login(browser, params), citizen)

    again = id_token_of(server, rp, callback_params(back), verifier)
    assert again["auth_time"] > first["auth_time"]
    assert again["auth_time"] >= int(time.time()) - 5


def test_max_age_not_exceeded_is_silent(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    first = id_token_of(server, rp, browser.log_in(params, citizen), verifier)

    params, verifier = code_request(rp, max_age="3600")
    again = id_token_of(server, rp, browser.authorize_silently(params), verifier)

    assert again["auth_time"] == first["auth_time"]


def test_max_age_zero_authenticates_again(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    first = id_token_of(server, rp, browser.log_in(params, citizen), verifier)
    time.sleep(1.1)

    params, verifier = code_request(rp, max_age="0")
    back = browser.login_with_app(goes_to_login(browser, params), citizen)

    assert back.status_code == 303
    again = id_token_of(server, rp, callback_params(back), verifier)
    assert again["auth_time"] > first["auth_time"]


# acr_values: which login methods the page offers, and what a session satisfies.


@pytest.mark.parametrize(
    ("acr_values", "app", "card"),
    [("high", False, True), ("substantial", True, True), ("low", True, True)],
)
def test_acr_values_choose_the_methods_offered(
    browser: Browser, rp: RelyingParty, acr_values: str, app: bool, card: bool
) -> None:
    params, _ = code_request(rp, acr_values=acr_values)

    page = browser.login_page(params)

    assert ('id="app-form"' in page) is app
    assert ('id="card-login"' in page) is card


def test_an_app_session_satisfies_substantial_but_not_high(
    server: RunningServer, browser: Browser, citizen: Citizen, rp: RelyingParty
) -> None:
    browser.log_in(code_request(rp)[0], citizen)

    params, _ = code_request(rp, prompt="none", acr_values="high")
    assert browser.authorize_silently(params)["error"] == "login_required"

    params, verifier = code_request(rp, prompt="none", acr_values="substantial")
    assert id_token_of(server, rp, browser.authorize_silently(params), verifier)["acr"] == "substantial"


# What the login page shows.


@pytest.mark.parametrize(
    ("hint", "shown"), [("EE38001019999", "38001019999"), ("38001019999", "38001019999")]
)
def test_login_hint_prefills_the_personal_code(
    browser: Browser, rp: RelyingParty, hint: str, shown: str
) -> None:
    params, _ = code_request(rp, login_hint=hint)

    page = browser.login_page(params)

    assert f'value="{shown}"' in page


def test_without_login_hint_the_personal_code_is_empty(browser: Browser, rp: RelyingParty) -> None:
    params, _ = code_request(rp)

    assert 'value=""' in browser.login_page(params)


@pytest.mark.parametrize(("ui_locales", "lang"), [("et", "et"), ("en", "en"), ("et en", "et")])
def test_ui_locales_sets_the_page_language(
    browser: Browser, rp: RelyingParty, ui_locales: str, lang: str
) -> None:
    params, _ = code_request(rp, ui_locales=ui_locales, claims_locales="et")

    assert f'<html lang="{lang}">' in browser.login_page(params)


def test_ui_locales_is_a_preference_list(browser: Browser, rp: RelyingParty) -> None:
    params, _ = code_request(rp, ui_locales="fi et")

    assert '<html lang="et">' in browser.login_page(params)


# id_token_hint.


def test_id_token_hint_for_someone_else_needs_a_login(
    server: RunningServer, browser: Browser, browsers: list[Browser], citizen: Citizen, rp: RelyingParty
) -> None:
    params, verifier = code_request(rp)
    others_token = tokens_for(server, rp, browser.log_in(params, citizen), verifier)["id_token"]
    mine = Browser(server)
    browsers.append(mine)
    me = enrol_citizen(server)
    params, verifier = code_request(rp)
    my_token = tokens_for(server, rp, mine.log_in(params, me), verifier)["id_token"]

    refused = mine.authorize_silently(code_request(rp, prompt="none", id_token_hint=others_token)[0])
    params, verifier = code_request(rp, prompt="none", id_token_hint=my_token)
    accepted = mine.authorize_silently(params)

    assert refused["error"] == "login_required"
    assert "code" not in refused
    goes_to_login(mine, code_request(rp, id_token_hint=others_token)[0])
    assert id_token_of(server, rp, accepted, verifier)["sub"] == me.sub
