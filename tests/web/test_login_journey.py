"""Whole journeys of a login: through the demo relying party (an ordinary OpenID Connect
client over HTTP) with the app's approval, consent and its withdrawal in the portal; a
refusal; a suspended certificate; and the demo wallet's own page doing the approving."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import RunningServer
from tests.web.conftest import (
    DESKTOP,
    EID_APP,
    PHONE,
    PIN1,
    Citizen,
    check_accessibility,
    finished,
    fits_width,
    log_in,
    new_citizen,
    screenshot,
)

pytestmark = pytest.mark.server


def test_demo_service_login_consent_and_withdrawal(page: Page, citizen: Citizen) -> None:
    page.goto("/demo")
    expect(page.locator("h1")).to_have_text("Residence certificate service")
    check_accessibility(page)
    screenshot(page, "demo")
    page.get_by_role("link", name="Log in with e-ID").click()

    # Our login page, for the demo service, in the language the service asked for.
    expect(page.locator("h1")).to_have_text("Log in to Demo: Residence certificate service")
    check_accessibility(page)
    log_in(page, citizen, start="", shot="login-wait")

    # Continues by itself to the consent page: which service, what it gets.
    expect(page.locator("h1")).to_have_text("Demo: Residence certificate service asks for your data")
    expect(page.locator("ul.shared")).to_contain_text("your given name, family name and date of birth")
    check_accessibility(page)
    screenshot(page, "consent")
    page.get_by_role("button", name="Allow").click()

    # Back at the service, which shows the ID token it checked.
    expect(page).to_have_url(re.compile(r"/demo$"))
    claims = page.locator("dl.facts")
    expect(claims).to_contain_text(f"EE{citizen.code}")
    expect(claims).to_contain_text("Jaak-Kristjan")
    expect(claims).to_contain_text("substantial")
    check_accessibility(page)
    screenshot(page, "demo-claims")

    # The portal lists the consent; withdrawing it ends the service's access.
    page.goto("/portal")
    consent = page.locator("li.consent", has_text="Demo: Residence certificate service")
    expect(consent).to_be_visible()
    expect(page.locator("ul.activity")).to_contain_text("Login")
    check_accessibility(page)
    screenshot(page, "portal")
    page.set_viewport_size(PHONE)
    fits_width(page)
    check_accessibility(page)
    page.set_viewport_size(DESKTOP)

    page.once("dialog", lambda dialog: dialog.accept())
    consent.get_by_role("button", name=re.compile("^Withdraw")).click()
    expect(page.locator("#portal-status")).to_have_text("Done.")
    expect(page.locator("li.consent")).to_have_count(0)
    assert page.request.get("/api/v1/me/consents").json() == []

    # The next login to the service asks for consent again.
    page.goto("/demo/login")
    expect(page.locator("h1")).to_have_text("Demo: Residence certificate service asks for your data")
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("alert")).to_have_text("You did not allow the service to receive your data.")


def test_refusing_in_the_app_is_explained_and_can_be_retried(page: Page, citizen: Citizen) -> None:
    page.goto("/portal/login?lang=et")
    page.get_by_label("Isikukood").fill(citizen.code)
    refusal = citizen.answer("refuse", "--wait", "30")
    page.get_by_role("button", name="Jätka").click()
    assert finished(refusal)["state"] == "refused"
    expect(page.locator("#error-text")).to_have_text("Sa keeldusid rakenduses sisselogimisest.")
    check_accessibility(page)
    page.get_by_role("button", name="Proovi uuesti").click()
    expect(page.get_by_label("Isikukood")).to_be_focused()
    log_in(page, citizen, start="")
    expect(page).to_have_url(re.compile(r"/portal$"))


def test_suspended_certificate_stops_the_next_login(
    page: Page, server: RunningServer, tmp_path: Path
) -> None:
    citizen = new_citizen(server, tmp_path)
    log_in(page, citizen)
    expect(page).to_have_url(re.compile(r"/portal$"))
    auth = page.locator("li.cert", has_text="Authentication (PIN1)")
    expect(auth.locator(".badge")).to_have_text("Valid")
    auth.get_by_role("button", name=re.compile("^Suspend")).click()
    expect(auth.locator(".badge")).to_have_text("Suspended")
    expect(page.locator("#portal-status")).to_have_text("Done.")
    expect(auth.get_by_role("button", name=re.compile("^Resume"))).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/$"))
    page.goto("/portal")
    expect(page).to_have_url(re.compile(r"/portal/login"))
    page.get_by_label("Personal identification code").fill(citizen.code)
    answer = citizen.answer("approve", "--pin", PIN1, "--wait", "30")
    page.get_by_role("button", name="Continue").click()
    _, err = answer.communicate(timeout=60)
    assert answer.returncode == 1 and "revoked or suspended" in err  # the service refused the answer
    expect(page.locator("#error-text")).to_have_text(
        "Your authentication certificate is revoked or suspended. Resume or renew it first."
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def wallet_page(citizen: Citizen) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [EID_APP, "--wallet", str(citizen.wallet), "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == f"Demo wallet at http://127.0.0.1:{port}/"
    yield f"http://127.0.0.1:{port}/"
    process.terminate()
    process.wait(timeout=10)
    process.stdout.close()


def test_the_demo_wallet_page_approves_a_login(
    page: Page, browser: Browser, citizen: Citizen, wallet_page: str
) -> None:
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True).new_page()
    try:
        phone.goto(wallet_page)
        expect(phone.locator("#requests")).to_contain_text("No pending requests")
        check_accessibility(phone)

        page.goto("/portal/login")
        page.get_by_label("Personal identification code").fill(citizen.code)
        page.get_by_role("button", name="Continue").click()
        code = page.locator("#verification-code")
        expect(code).to_have_text(re.compile(r"^\d{4}$"))

        # The wallet page notices the request by itself and shows the same code.
        request = phone.locator("section.request")
        expect(request.locator(".code")).to_have_text(code.text_content() or "", timeout=10_000)
        fits_width(phone)
        check_accessibility(phone)
        screenshot(phone, "wallet")
        request.get_by_label("PIN1").fill("0000")
        request.get_by_role("button", name="Confirm").click()
        expect(phone.get_by_role("status")).to_have_text("Wrong PIN1: 2 tries left.")
        request = phone.locator("section.request")
        request.get_by_label("PIN1").fill(PIN1)
        request.get_by_role("button", name="Confirm").click()
        expect(phone.get_by_role("status")).to_have_text("Confirmed.")

        expect(page).to_have_url(re.compile(r"/portal$"))
        expect(page.locator(".whoami")).to_contain_text("Jaak-Kristjan Jõeorg")
        # A POST without the page's token is refused (another site cannot answer for the citizen).
        forged = httpx.post(wallet_page + "answer", data={"request": "x", "decision": "refuse"})
        assert forged.status_code == 403
    finally:
        phone.context.close()
