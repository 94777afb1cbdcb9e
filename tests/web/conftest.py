"""Browser tests: Debian's Chromium driven by Playwright against a real ``eid serve``.

One browser per session, a fresh context (cookies, viewport) per test. Every page the
tests open is watched: a Content-Security-Policy violation or an uncaught script error
fails the test. ``check_accessibility`` runs axe-core (vendored with npm, pinned in
``tests/web/package-lock.json``) and fails on WCAG A/AA violations of serious or
critical impact. With ``EID_SCREENSHOTS=1`` the tests save the main pages to
``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.conftest import RunningServer
from tests.wallet.test_end_to_end import app, enrol

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).with_name("node_modules") / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "screenshots"
PHONE: ViewportSize = {"width": 360, "height": 740}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
EID_APP = str(Path(sys.executable).parent / "eid-app")
PIN1, PIN2 = "1234", "12345"

pytestmark = pytest.mark.server


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium missing: run `bash scripts/system-deps.sh` (make test does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@dataclass
class Watcher:
    """What the pages of one test complained about."""

    problems: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        text = message.text
        # A page answered with 4xx (an error page, a refused API call) is logged as a failed
        # resource; that is the server's answer, not a fault of the page.
        if message.type == "error" and not text.startswith("Failed to load resource"):
            self.problems.append(f"console: {text}")
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.problems.append(f"CSP: {text}")


def _context(browser: Browser, server: RunningServer, watcher: Watcher, **options: object) -> BrowserContext:
    context = browser.new_context(base_url=server.url, accept_downloads=True, **options)  # type: ignore[arg-type]
    context.on("console", watcher.console)
    context.on("weberror", lambda error: watcher.problems.append(f"page error: {error.error}"))
    return context


@pytest.fixture
def watcher() -> Watcher:
    return Watcher()


@pytest.fixture
def page(browser: Browser, server: RunningServer, watcher: Watcher) -> Iterator[Page]:
    """A desktop page in a fresh context; the test fails on CSP violations and script errors."""
    context = _context(browser, server, watcher, viewport=DESKTOP, locale="en-GB")
    opened = context.new_page()
    yield opened
    context.close()
    assert watcher.problems == []


@pytest.fixture
def phone(browser: Browser, server: RunningServer, watcher: Watcher) -> Iterator[Page]:
    """A 360 px wide touch screen in a fresh context."""
    context = _context(
        browser, server, watcher, viewport=PHONE, is_mobile=True, has_touch=True, locale="et-EE"
    )
    opened = context.new_page()
    yield opened
    context.close()
    assert watcher.problems == []


def check_accessibility(page: Page) -> None:
    """axe-core on the page as it is now: no serious or critical WCAG 2.1 A/AA violation."""
    if not AXE.exists():
        pytest.fail("axe-core missing: run `bash scripts/system-deps.sh` (make test does)")
    # Evaluated through the DevTools protocol, so the page's CSP (no inline script) allows it.
    page.evaluate(AXE.read_text() + "\n;undefined")
    result = page.evaluate(
        """async () => await axe.run(document, {runOnly: {type: "tag",
             values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})"""
    )
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == [], json.dumps(
        [{"id": v["id"], "help": v["help"], "nodes": [n["html"] for n in v["nodes"][:3]]} for v in bad],
        indent=2,
    )


def fits_width(page: Page) -> None:
    """Nothing makes the page scroll sideways (readable on a narrow phone)."""
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the screen"


def screenshot(page: Page, name: str) -> None:
    if os.environ.get("EID_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@dataclass(frozen=True)
class Citizen:
    """A citizen with a real ``eid-app`` wallet."""

    code: str
    wallet: Path

    def answer(self, *args: str) -> subprocess.Popen[str]:
        """``eid-app approve|refuse ARGS --json`` in the background (it waits for the request)."""
        return subprocess.Popen(
            [EID_APP, "--wallet", str(self.wallet), *args, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def finished(process: subprocess.Popen[str]) -> dict[str, object]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def new_citizen(server: RunningServer, directory: Path) -> Citizen:
    code, _ = enrol(server, directory / "wallet")
    return Citizen(code=code, wallet=directory / "wallet")


@pytest.fixture(scope="module")
def citizen(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Citizen:
    """An enrolled citizen shared by a module's tests (which leave the certificates alone)."""
    return new_citizen(server, tmp_path_factory.mktemp("citizen"))


def log_in(page: Page, citizen: Citizen, start: str = "/portal/login", shot: str | None = None) -> None:
    """Log in through the page with the app: the code on the page is the one the app shows.

    ``shot`` names a screenshot of the page while it waits for the app."""
    if start:
        page.goto(start)
    page.fill("#personal-code", citizen.code)
    page.click("#app-start")
    shown = page.locator("#verification-code")
    expect(shown).to_be_visible()
    expect(shown).to_have_text(re.compile(r"^\d{4}$"))
    code = shown.text_content()  # read now: the next page may have an element of that id too
    if shot is not None:
        screenshot(page, shot)
    approved = finished(citizen.answer("approve", "--pin", PIN1, "--wait", "30"))
    assert approved["state"] == "completed"
    assert approved["verification_code"] == code


def pending_count(server: RunningServer, citizen: Citizen) -> int:
    out = app(citizen.wallet, "pending", "--json").stdout
    return len(json.loads(out)["requests"])


def root_pem(server: RunningServer, directory: Path) -> Path:
    der = httpx.get(server.url + "/ca/root.crt").content
    path = directory / "root.pem"
    subprocess.run(["openssl", "x509", "-inform", "DER", "-out", str(path)], input=der, check=True)
    return path


@pytest.fixture(scope="session")
def nss_db(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An NSS database trusting the service's root, for pdfsig (see tests/signing/conftest.py)."""
    directory = tmp_path_factory.mktemp("nss")
    root = root_pem(server, directory)
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{directory}"], check=True)
    subprocess.run(
        ["certutil", "-A", "-n", "eid-root", "-t", "C,C,C", "-i", str(root), "-d", f"sql:{directory}"],
        check=True,
    )
    return f"sql:{directory}"
