"""Signing in the browser: a PDF dropped on ``/sign``, the stamp placed, the app's approval,
the download checked by poppler's ``pdfsig``; and the demo service's document signed
through an envelope, fetched back by the service with its own token."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from pyhanko.pdf_utils.reader import PdfFileReader

from tests.signing.conftest import make_pdf
from tests.signing.witnesses import pdfsig
from tests.web.conftest import (
    PHONE,
    PIN2,
    Citizen,
    check_accessibility,
    finished,
    fits_width,
    log_in,
    screenshot,
)

pytestmark = pytest.mark.server


def _drop(page: Page, selector: str, path: Path) -> None:
    """Drag a file onto ``selector``: a real ``drop`` event with a DataTransfer holding it."""
    data = list(path.read_bytes())
    transfer = page.evaluate_handle(
        """([bytes, name]) => {
             const transfer = new DataTransfer();
             transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "application/pdf"}));
             return transfer;
           }""",
        [data, path.name],
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def _stamp_place(path: Path) -> tuple[int, list[float]]:
    """Page index and rectangle of the (only) signature's widget."""
    with path.open("rb") as handle:
        reader = PdfFileReader(handle)
        field = reader.embedded_signatures[0].sig_field
        kids = reader.root["/Pages"]["/Kids"]
        pages = [kids.raw_get(i).idnum for i in range(len(kids))]
        page = pages.index(field.raw_get("/P").idnum)
        return page, [float(v) for v in field["/Rect"]]


def test_sign_a_dropped_pdf_and_download_it(
    page: Page, citizen: Citizen, nss_db: str, tmp_path: Path
) -> None:
    log_in(page, citizen, start="/sign")  # /sign sends an anonymous visitor to log in first
    expect(page).to_have_url(re.compile(r"/sign$"))
    expect(page.locator("h1")).to_have_text("Sign a PDF")
    check_accessibility(page)
    screenshot(page, "sign")

    source = make_pdf(tmp_path / "leping.pdf", pages=2)
    _drop(page, "#drop", source)
    expect(page.locator("#file-chosen")).to_have_text("Chosen: leping.pdf")
    page.get_by_label("Page", exact=True).fill("1")
    page.get_by_label("Corner").select_option("top-left")
    page.get_by_label("Signature level").select_option("B-T")
    page.get_by_label("Reason (optional)").fill("Nõustun")
    answer = citizen.answer("approve", "--pin", PIN2, "--wait", "30")
    page.get_by_role("button", name="Upload and sign").click()

    expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
    code = page.locator("#verification-code")
    expect(code).to_have_text(re.compile(r"^\d{4}$"))
    approved = finished(answer)
    assert approved["verification_code"] == code.text_content()
    assert approved["display_text"] == "Sign leping.pdf"
    expect(page.locator("#sign-status")).to_have_text("Signed. Your document is ready.")
    check_accessibility(page)
    screenshot(page, "sign-done")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the signed PDF").click()
    signed = tmp_path / "signed.pdf"
    download.value.save_as(signed)
    assert download.value.suggested_filename == "leping.pdf"
    report = pdfsig(nss_db, signed)
    assert len(report) == 1
    assert "Signature Validation: Signature is Valid." in report[0]
    assert "Certificate Validation: Certificate is Trusted." in report[0]
    assert any(
        line.startswith("Signer Certificate Common Name:") and citizen.code in line for line in report[0]
    ), report[0]
    index, (x1, _y1, _x2, y2) = _stamp_place(signed)
    assert index == 0 and x1 < 100 and y2 > 742  # page 1, top left (A4 is 595 x 842 points)


def test_the_signing_page_on_a_phone(phone: Page, citizen: Citizen) -> None:
    log_in(phone, citizen, start="/portal/login?next=/sign")
    expect(phone.locator("h1")).to_have_text("Allkirjasta PDF")
    fits_width(phone)
    check_accessibility(phone)
    phone.get_by_role("button", name="Laadi üles ja allkirjasta").click()
    expect(phone.get_by_role("alert")).to_have_text("Vali kõigepealt PDF-fail.")
    screenshot(phone, "sign-phone")


def test_a_pdf_that_is_not_one_is_refused_clearly(page: Page, citizen: Citizen, tmp_path: Path) -> None:
    log_in(page, citizen, start="/portal/login?next=/sign")
    fake = tmp_path / "notes.pdf"
    fake.write_bytes(b"these are not the PDF bytes you are looking for")
    page.set_input_files("#file", str(fake))
    page.get_by_role("button", name="Upload and sign").click()
    expect(page.locator("#sign-error-text")).to_contain_text("This file is not a PDF we can sign.")
    expect(page.get_by_role("button", name="Upload and sign")).to_be_visible()

    # The stamp options of the API the page uses: a page that does not exist is a clear 4xx.
    pdf = make_pdf(tmp_path / "one.pdf").read_bytes()
    headers = {"Content-Type": "application/pdf"}
    for query, words in (("page=0", "page numbers start at 1"), ("page=5", "does not exist")):
        answer = page.request.post(f"/api/v1/signing?{query}", data=pdf, headers=headers)
        assert answer.status == 400, answer.text()
        assert answer.headers["content-type"] == "application/problem+json"
        assert words in answer.json()["detail"]
    answer = page.request.post("/api/v1/signing?position=middle", data=pdf, headers=headers)
    assert answer.status == 422


def test_the_demo_service_asks_for_a_signature(
    page: Page, citizen: Citizen, nss_db: str, tmp_path: Path
) -> None:
    page.goto("/demo/login")
    log_in(page, citizen, start="")
    page.wait_for_url(re.compile(r"/(consent\?|demo$)"))
    if "/consent" in page.url:  # unless an earlier test gave the consent
        page.get_by_role("button", name="Allow").click()
    expect(page).to_have_url(re.compile(r"/demo$"))
    page.get_by_role("button", name="Prepare and sign the application").click()

    # Our signing page, for the envelope the service created with its own token.
    expect(page).to_have_url(re.compile(r"/sign\?envelope=ev-"))
    expect(page.locator("h2").first).to_have_text("residence-application.pdf")
    expect(page.locator("ol.signers")).to_contain_text("Jaak-Kristjan Jõeorg: not signed yet")
    check_accessibility(page)
    answer = citizen.answer("approve", "--pin", PIN2, "--wait", "30")
    page.get_by_role("button", name="Sign with the e-ID app").click()
    assert finished(answer)["state"] == "completed"
    expect(page.locator("#sign-status")).to_have_text("Signed. Your document is ready.")
    page.get_by_role("link", name="Return to the service").click()

    # The service learns the outcome and fetches the document itself.
    expect(page.locator(".badge")).to_have_text("Signed by everyone")
    expect(page.locator("ol.signers")).to_contain_text("Jaak-Kristjan Jõeorg: signed")
    check_accessibility(page)
    screenshot(page, "demo-signed")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the signed application").click()
    signed = tmp_path / "application.pdf"
    download.value.save_as(signed)
    report = pdfsig(nss_db, signed)
    assert "Signature Validation: Signature is Valid." in report[0]
    page.set_viewport_size(PHONE)
    fits_width(page)
