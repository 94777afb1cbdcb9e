"""The pages anyone can open: landing page, languages, the login page's forms, error pages.

Each page is checked in the browser: accessible (axe-core), no CSP violation (the page
fixtures), usable at 360 px, and in the language chosen by the rules of ``api/i18n.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
from base64 import urlsafe_b64encode
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import RunningServer
from tests.web.conftest import check_accessibility, fits_width, screenshot

pytestmark = pytest.mark.server


def _client(server: RunningServer, redirect_uri: str = "https://rp.example/cb") -> str:
    added = server.env.run_eid(
        "client", "add", "--name", "Maksuamet", "--redirect-uri", redirect_uri, "--json"
    )
    return str(json.loads(added.stdout)["client_id"])


def _authorize(client_id: str, redirect_uri: str = "https://rp.example/cb", **extra: str) -> str:
    challenge = urlsafe_b64encode(hashlib.sha256(b"v" * 43).digest()).rstrip(b"=").decode()
    params = {
        "client_id": client_id,
        "response_type": "code",
        "scope": "openid profile",
        "redirect_uri": redirect_uri,
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return "/oauth/authorize?" + urlencode(params)


def test_landing_page_links_to_demo_verification_and_docs(page: Page) -> None:
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Your digital identity")
    for href in ("/demo", "/verify", "/docs", "/portal", "/sign"):
        expect(page.locator(f'main a[href="{href}"]').first).to_be_visible()
    check_accessibility(page)
    screenshot(page, "landing")
    # Keyboard: the first Tab reaches the skip link, and it is visible when focused.
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()
    expect(page.locator("a.skip")).to_be_in_viewport()


def test_landing_page_on_a_phone_in_estonian(phone: Page) -> None:
    phone.goto("/")  # the phone's browser asks for Estonian (Accept-Language: et-EE)
    expect(phone.locator("html")).to_have_attribute("lang", "et")
    expect(phone.locator("h1")).to_have_text("Sinu digitaalne isikutunnistus")
    fits_width(phone)
    check_accessibility(phone)
    screenshot(phone, "landing-phone")


def test_language_switch_is_remembered(page: Page) -> None:
    page.goto("/")
    expect(page.locator("html")).to_have_attribute("lang", "en")  # Accept-Language en-GB
    page.get_by_role("navigation", name="Language").get_by_role("link", name="Eesti").click()
    expect(page.locator("html")).to_have_attribute("lang", "et")
    expect(page.locator("h1")).to_have_text("Sinu digitaalne isikutunnistus")
    # The choice is kept for the next page without the ?lang= parameter.
    page.goto("/portal/login")
    expect(page.locator("h1")).to_have_text("Sisselogimine: Minu e-ID")
    expect(page.get_by_label("Isikukood")).to_be_visible()
    check_accessibility(page)
    page.get_by_role("link", name="English").click()
    expect(page.locator("h1")).to_have_text("Log in to My e-ID")
    assert "lang=en" in page.url and "next" not in page.url


def test_ui_locales_chooses_the_login_language_and_login_hint_fills_the_code(
    page: Page, server: RunningServer
) -> None:
    client_id = _client(server)
    page.goto(_authorize(client_id, ui_locales="et en", login_hint="EE38001085718"))
    expect(page).to_have_url(re.compile(r"/login\?request="))
    expect(page.locator("html")).to_have_attribute("lang", "et")
    expect(page.locator("h1")).to_have_text("Sisselogimine: Maksuamet")
    expect(page.get_by_label("Isikukood")).to_have_value("38001085718")
    check_accessibility(page)
    screenshot(page, "login")


def test_login_form_explains_a_malformed_or_unknown_code(page: Page) -> None:
    page.goto("/portal/login")
    code = page.get_by_label("Personal identification code")
    code.fill("123")
    code.press("Enter")  # keyboard only
    alert = page.locator("#error-text")
    expect(alert).to_have_text("Enter your personal identification code: 11 digits.")
    expect(code).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("button", name="Try again")).to_be_focused()
    page.keyboard.press("Enter")  # try again puts the focus back on the field
    expect(code).to_be_focused()
    code.fill("60001019906")  # valid, but nobody with this code is registered
    page.get_by_role("button", name="Continue").click()
    expect(alert).to_have_text("No e-ID account was found for this personal code.")
    check_accessibility(page)


def test_card_login_without_the_extension_says_what_to_do(page: Page) -> None:
    page.goto("/portal/login")
    page.get_by_role("button", name="Log in with an ID card").click()
    expect(page.locator("#error-text")).to_contain_text("Web eID browser extension was not found")


def test_error_pages_for_an_unknown_service_and_a_wrong_return_address(
    page: Page, phone: Page, server: RunningServer
) -> None:
    response = page.goto(_authorize("no-such-client"))
    assert response is not None and response.status == 400
    expect(page.locator("h1")).to_have_text("Unknown service")
    expect(page.get_by_role("alert")).to_have_text(
        "The service that sent you here is not registered with us."
    )
    assert "Traceback" not in page.content() and '{"' not in page.inner_text("main")
    check_accessibility(page)
    screenshot(page, "error")

    client_id = _client(server)
    response = phone.goto(_authorize(client_id, redirect_uri="https://evil.example/cb"))
    assert response is not None and response.status == 400
    assert phone.url.startswith(server.url + "/oauth/authorize")  # nothing was redirected
    expect(phone.locator("h1")).to_have_text("Vigane päring")
    expect(phone.get_by_role("alert")).to_have_text(
        "Tagasisuunamise aadress ei vasta teenuse registreeringule."
    )
    fits_width(phone)
    check_accessibility(phone)


def test_pages_send_a_strict_content_security_policy(page: Page) -> None:
    for path in ("/", "/portal/login", "/demo"):
        response = page.goto(path)
        assert response is not None
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        # Nothing inline for the policy to block: scripts are files, no style attributes.
        assert page.locator("script:not([src])").count() == 0
        assert page.locator("[style]").count() == 0
