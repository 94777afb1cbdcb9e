"""Verification in the browser: a PDF signed with a real ``eid-app`` checked on ``/verify``
(and a copy with one byte changed), a photo of its QR code (rendered by poppler) checked on
the server, the QR landing page on a phone in both languages, and the camera scanning the
code through Chromium's fake video device (a Y4M file made from the rendered page).

Witnesses: poppler's ``pdfsig`` for the verdicts, zxing-cpp for what the QR code says."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import RunningServer
from tests.signing.conftest import make_pdf
from tests.signing.witnesses import pdfsig
from tests.wallet.test_end_to_end import app
from tests.web.conftest import (
    CHROMIUM,
    DESKTOP,
    PHONE,
    PIN2,
    Citizen,
    Watcher,
    _context,
    check_accessibility,
    fits_width,
    screenshot,
)

pytestmark = pytest.mark.server


@dataclass(frozen=True)
class Signed:
    """A PDF signed through the service, the picture of its page and what its QR code says."""

    pdf: Path
    photo: Path
    url: str


@pytest.fixture(scope="module")
def signed(citizen: Citizen, tmp_path_factory: pytest.TempPathFactory) -> Signed:
    directory = tmp_path_factory.mktemp("verify")
    source = make_pdf(directory / "hakemus.pdf")
    out = directory / "hakemus-signed.pdf"
    result = app(citizen.wallet, "sign", str(source), "--out", str(out), "--pin2", PIN2, "--json")
    assert json.loads(result.stdout)["state"] == "completed"
    # The last page (where the stamp is) as a photo would be: a PNG of the printed page.
    stem = directory / "page"
    subprocess.run(
        ["pdftoppm", "-png", "-r", "150", "-singlefile", str(out), str(stem)], check=True, timeout=60
    )
    photo = stem.with_suffix(".png")
    [code] = zxingcpp.read_barcodes(Image.open(photo), formats=zxingcpp.BarcodeFormat.QRCode)
    return Signed(pdf=out, photo=photo, url=code.text)


def _tampered(source: Path, target: Path) -> Path:
    """A copy with one byte of the signed page content changed (a digit of the text)."""
    data = bytearray(source.read_bytes())
    # make_pdf writes its text uncompressed; a byte inside the first signed range changes.
    at = data.index(b"Tf")
    data[at - 2] = ord("9") if data[at - 2] != ord("9") else ord("8")
    target.write_bytes(bytes(data))
    return target


def _both_widths(page: Page) -> None:
    check_accessibility(page)
    page.set_viewport_size(PHONE)
    fits_width(page)
    check_accessibility(page)
    page.set_viewport_size(DESKTOP)


def test_verify_a_signed_pdf_and_a_changed_copy(
    page: Page, signed: Signed, nss_db: str, tmp_path: Path
) -> None:
    witness = pdfsig(nss_db, signed.pdf)
    assert "Signature Validation: Signature is Valid." in witness[0]
    page.goto("/verify")
    expect(page.locator("h1")).to_have_text("Check a signed document")
    expect(page.locator("#qr")).to_be_visible()  # the script showed the QR part
    expect(page.locator("#camera-stop")).to_be_hidden()
    expect(page.locator("#camera-view")).to_be_hidden()
    screenshot(page, "verify")
    _both_widths(page)

    page.set_input_files("#file", str(signed.pdf))
    page.click("#pdf-heading ~ form button[type=submit]")
    expect(page.locator("h1")).to_have_text("The signatures are valid")
    expect(page.locator("#verdict")).to_contain_text("1 of 1 signatures valid")
    expect(page.locator("#verdict")).to_contain_text("has not been changed")
    expect(page.locator("section.signature h2")).to_contain_text("JÕEORG")
    details = page.locator("section.signature details")
    expect(details.locator("dl")).not_to_be_visible()  # technical detail one click away
    details.locator("summary").click()
    expect(details.locator("dl")).to_contain_text("TOTAL-PASSED")
    screenshot(page, "verify-report")
    _both_widths(page)

    changed = _tampered(signed.pdf, tmp_path / "changed.pdf")
    assert not any("Signature is Valid." in line for line in pdfsig(nss_db, changed)[0])
    page.goto("/verify")
    page.set_input_files("#file", str(changed))
    page.click("#pdf-heading ~ form button[type=submit]")
    expect(page.locator("h1")).to_have_text("This document did not pass the check")
    expect(page.locator("section.signature")).to_contain_text("changed after it was signed")
    _both_widths(page)

    # Not a PDF: a sentence in the visitor's language, the detail one click away.
    page.goto("/verify?lang=et")
    page.set_input_files("#file", str(signed.photo))
    page.click("#pdf-heading ~ form button[type=submit]")
    expect(page.locator("main > [role=alert]")).to_contain_text("See fail ei ole PDF")
    check_accessibility(page)


def test_a_photo_of_the_qr_code(page: Page, signed: Signed, tmp_path: Path) -> None:
    page.goto("/verify")
    page.set_input_files("#qr-photo", str(signed.photo))
    page.click("#qr-photo-form button[type=submit]")
    result = page.locator("#qr-result")
    expect(result).to_contain_text("Genuine.")
    expect(result).to_contain_text("Jaak-Kristjan")
    expect(page.locator("#qr-status")).to_contain_text("Genuine.")
    _both_widths(page)

    blank = tmp_path / "blank.png"
    Image.new("RGB", (400, 300), "white").save(blank)
    page.set_input_files("#qr-photo", str(blank))
    page.click("#qr-photo-form button[type=submit]")
    expect(page.locator("#qr-error")).to_have_text(re.compile("No QR code was found"))
    expect(result).to_be_hidden()


def test_the_qr_landing_page_on_a_phone(
    phone: Page, signed: Signed, server: RunningServer, tmp_path: Path
) -> None:
    assert signed.url.startswith(server.url + "/v/")
    path = signed.url.removeprefix(server.url)
    phone.goto(path)  # the phone's browser asks for Estonian
    expect(phone.locator("h1")).to_have_text("Allkirjastatud dokument")
    expect(phone.locator("p.status")).to_contain_text("Kehtiv.")
    fits_width(phone)
    check_accessibility(phone)
    phone.set_input_files("#file", str(signed.pdf))
    phone.click("form button[type=submit]")
    expect(phone.locator("#check-result")).to_contain_text("PDF vastab.")
    fits_width(phone)
    check_accessibility(phone)

    phone.goto(path + "?lang=en")
    expect(phone.locator("h1")).to_have_text("Signed document")
    screenshot(phone, "verify-qr-phone")
    phone.set_input_files("#file", str(_tampered(signed.pdf, tmp_path / "changed.pdf")))
    phone.click("form button[type=submit]")
    expect(phone.locator("#check-result")).to_contain_text("The PDF does not match.")
    phone.set_input_files("#file", str(signed.pdf))
    phone.click("form button[type=submit]")
    expect(phone.locator("#check-result")).to_contain_text("The PDF matches.")
    fits_width(phone)
    check_accessibility(phone)

    # A forged code: the page says so in words, with no trace of the error's internals.
    phone.goto(path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"))
    expect(phone.locator("h1")).to_have_text("This QR code could not be verified")
    expect(phone.locator("main")).not_to_contain_text("Traceback")
    check_accessibility(phone)


def _y4m(picture: Path, target: Path, width: int = 640, height: int = 480) -> Path:
    """A few frames of YUV 4:2:0 video showing the QR code (Chromium's fake camera input).

    The code is cropped from the rendered page (zxing-cpp says where) and centred."""
    page = Image.open(picture).convert("RGB")
    [code] = zxingcpp.read_barcodes(page, formats=zxingcpp.BarcodeFormat.QRCode)
    corners = code.position
    xs = [corners.top_left.x, corners.top_right.x, corners.bottom_left.x, corners.bottom_right.x]
    ys = [corners.top_left.y, corners.top_right.y, corners.bottom_left.y, corners.bottom_right.y]
    margin = (max(xs) - min(xs)) // 4
    crop = page.crop((min(xs) - margin, min(ys) - margin, max(xs) + margin, max(ys) + margin))
    crop.thumbnail((height - 40, height - 40))
    frame = Image.new("RGB", (width, height), "white")
    frame.paste(crop, ((width - crop.width) // 2, (height - crop.height) // 2))
    y, cb, cr = frame.convert("YCbCr").split()
    half = (width // 2, height // 2)
    planes = y.tobytes() + cb.resize(half).tobytes() + cr.resize(half).tobytes()
    with target.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F5:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(5):
            out.write(b"FRAME\n" + planes)
    return target


@pytest.fixture
def camera_browser(browser: Browser, signed: Signed, tmp_path: Path) -> Iterator[Browser]:
    """A second Chromium whose camera shows the QR code (and grants access without asking);
    launched through the session's Playwright (a second one cannot start in the same thread)."""
    video = _y4m(signed.photo, tmp_path / "qr.y4m")
    launched = browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-background-networking",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    yield launched
    launched.close()


def test_scan_with_the_camera(camera_browser: Browser, server: RunningServer, signed: Signed) -> None:
    watcher = Watcher()
    context = _context(camera_browser, server, watcher, viewport=PHONE, is_mobile=True, locale="en-GB")
    context.grant_permissions(["camera"])
    page = context.new_page()
    page.goto("/verify")
    # Linux Chromium has no BarcodeDetector, so this is the vendored jsQR at work.
    assert page.evaluate("'BarcodeDetector' in window") is False
    page.click("#camera-start")
    # The page decodes a frame every 250 ms with jsQR; with the other test worker busy,
    # 20 s was once not enough (CI, 2026-12-07), so the wait is generous and says why.
    try:
        page.wait_for_url(re.compile(r"/v/"), timeout=60_000)
    except PlaywrightTimeoutError:
        status = page.locator("#qr-status").text_content()
        error = page.locator("#qr-error").text_content()
        raise AssertionError(f"no scan: status {status!r}, error {error!r}, {watcher.problems}") from None
    assert page.url == signed.url
    expect(page.locator("h1")).to_have_text("Signed document")
    context.close()
    assert watcher.problems == []


def test_jsqr_decodes_a_picture_and_a_missing_camera_is_explained(
    page: Page, signed: Signed, browser: Browser
) -> None:
    page.goto("/verify")
    photo = "data:image/png;base64," + __import__("base64").b64encode(signed.photo.read_bytes()).decode()
    decoded = page.evaluate(
        """async (src) => {
             const image = new Image();
             image.src = src;
             await image.decode();
             return await document.getElementById("qr").decodeImage(image);
           }""",
        photo,
    )
    assert decoded == signed.url
    # The session's browser has no camera at all: the page says what to do instead.
    page.click("#camera-start")
    expect(page.locator("#qr-error")).to_contain_text(
        re.compile("No camera was found|camera was not allowed")
    )
    expect(page.locator("#camera-start")).to_be_focused()
    check_accessibility(page)
