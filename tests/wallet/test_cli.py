"""``eid-app`` commands: output, exit codes and one-line errors (against the fake service).

These are protocol-shape tests too: the service is ``fake_service.FakeService``.
They run the CLI as shipped, default scrypt cost included.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography import x509

from wallet.cli import AppContext, cli

from .fake_service import FakeService

HELLO = hashlib.sha256(b"Hello World!").digest()


class App:
    """Runs ``eid-app --wallet DIR ...`` in-process with the fake as the network."""

    def __init__(self, fake: FakeService, directory: Path) -> None:
        self.fake = fake
        self.directory = directory

    def __call__(self, *args: str, transport: httpx.BaseTransport | None = None) -> Result:
        context = AppContext(transport=transport or self.fake.transport())
        return CliRunner().invoke(cli, ["--wallet", str(self.directory), *args], obj=context)

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    def enroll(self, *extra: str) -> Any:
        return self.json(
            "enroll",
            "--server",
            self.fake.base_url + "/",
            "--activation-code",
            self.fake.new_activation_code(),
            "--pin1",
            "1234",
            "--pin2",
            "12345",
            *extra,
        )


@pytest.fixture
def app(fake: FakeService, tmp_path: Path) -> App:
    return App(fake, tmp_path / "w")


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("eid-app: ")
    return result.stderr.strip()


def test_enroll_prints_citizen_device_serials_and_puk(app: App) -> None:
    out = app.enroll()
    device = app.fake.devices[out["device_id"]]
    assert set(out) == {"server_url", "device_id", "citizen", "certificates", "puk"}
    assert out["server_url"] == "https://eid.example"
    assert out["citizen"]["personal_code"] == "38001085718"
    assert re.fullmatch(r"\d{8}", out["puk"])
    for kind, der in (("auth", device.auth_certificate), ("sign", device.sign_certificate)):
        cert = x509.load_der_x509_certificate(der)
        assert out["certificates"][kind]["serial"] == format(cert.serial_number, "x")
        assert out["certificates"][kind]["not_after"] == cert.not_valid_after_utc.isoformat()
    assert app.fake.violations == []


def test_enroll_text_shows_the_puk_once(app: App) -> None:
    result = app(
        "enroll", "--server", app.fake.base_url, "--activation-code", app.fake.new_activation_code(),
        "--pin1", "1234", "--pin2", "12345",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    puk = re.search(r"PUK: (\d{8})", result.stdout)
    assert puk and "shown only this once" in result.stdout
    status = app("status")
    assert puk.group(1) not in status.stdout
    assert puk.group(1) not in (app.directory / "wallet.json").read_text()


@pytest.mark.parametrize(
    ("pins", "message"),
    [(("12", "12345"), "PIN1 must be 4-12 digits"), (("1234", "1234"), "PIN2 must be 5-12 digits")],
)
def test_enroll_bad_pin_is_a_usage_error_before_any_call(
    app: App, pins: tuple[str, str], message: str
) -> None:
    result = app(
        "enroll",
        "--server",
        app.fake.base_url,
        "--activation-code",
        "X",
        "--pin1",
        pins[0],
        "--pin2",
        pins[1],
    )
    assert one_line_error(result, 2) == f"eid-app: {message}"
    assert app.fake.calls == []


def test_token_options_go_together(app: App) -> None:
    result = app(
        "enroll", "--server", "https://e", "--activation-code", "X", "--pin1", "1234", "--pin2", "12345",
        "--pkcs11-module", "/x.so",
    )  # fmt: skip
    assert result.exit_code == 2 and "--pkcs11-module and --token-label go together" in result.stderr


def test_status(app: App) -> None:
    enrolled = app.enroll()
    status = app.json("status")
    assert status["device_id"] == enrolled["device_id"]
    assert status["server_url"] == "https://eid.example"
    assert status["keys"]["auth"]["serial"] == enrolled["certificates"]["auth"]["serial"]
    assert status["keys"]["auth"]["pin_tries_left"] == 3 and status["keys"]["auth"]["blocked"] is False
    assert status["keys"]["sign"]["storage"] == {"type": "file"}
    assert (status["puk_tries_left"], status["puk_blocked"]) == (3, False)
    text = app("status").stdout
    assert "PIN1 3 tries left" in text and "Jaak-Kristjan Jõeorg" in text


def test_pending_and_approve(app: App) -> None:
    app.enroll()
    request_id = app.fake.open_request("auth", HELLO)
    listed = app.json("pending")["requests"]
    assert [(r["id"], r["kind"], r["verification_code"]) for r in listed] == [(request_id, "auth", "7712")]
    assert listed[0]["display_text"] == "Log in to Tax and Customs Board"
    answered = app.json("approve", "--pin", "1234")
    assert (answered["id"], answered["state"], answered["verification_code"]) == (
        request_id,
        "completed",
        "7712",
    )
    assert app.fake.violations == []
    # The listings carried request tokens; the approval is authenticated by its signature.
    assert {claims["htm"] for _header, claims in app.fake.tokens} == {"GET"}
    answers = [
        c for c in app.fake.calls if c.method == "POST" and c.url.path.startswith("/api/v1/app/requests/")
    ]
    assert len(answers) == 1 and "authorization" not in answers[0].headers


def test_approve_text_shows_the_code_first(app: App) -> None:
    app.enroll()
    app.fake.open_request("sign", HELLO, display_text="Sign contract.pdf")
    result = app("approve", "--pin", "12345")
    assert result.exit_code == 0, result.stderr
    first, last = result.stdout.strip().splitlines()
    assert "verification code 7712" in first and "contract.pdf" in first
    assert last == "Answer: completed"


def test_pending_refuses_a_wrong_code(app: App) -> None:
    app.enroll()
    app.fake.open_request("auth", HELLO, code="0000")
    result = app("pending")
    assert "shows verification code 0000 but its hash gives 7712" in one_line_error(result, 1)
    assert "No pending requests." in result.stdout


def test_wrong_pins_then_blocked_then_unblock(app: App) -> None:
    puk = app.enroll()["puk"]
    request_id = app.fake.open_request("auth", HELLO)
    assert one_line_error(app("approve", "--pin", "9999"), 1) == "eid-app: wrong PIN1: 2 tries left"
    assert one_line_error(app("approve", "--pin", "9999"), 1) == "eid-app: wrong PIN1: 1 try left"
    assert "PIN1 is blocked" in one_line_error(app("approve", "--pin", "9999"), 1)
    assert "PIN1 is blocked" in one_line_error(app("approve", "--pin", "1234"), 1)
    assert app.json("status")["keys"]["auth"]["blocked"] is True
    assert app.fake.requests[request_id].answers == []
    result = app("unblock", "--key", "auth", "--puk", puk, "--new-pin", "4321")
    assert result.exit_code == 0 and "PIN1 is set" in result.stdout
    assert app.json("approve", "--pin", "4321")["state"] == "completed"


def test_refuse(app: App) -> None:
    app.enroll()
    request_id = app.fake.open_request("sign", HELLO)
    answered = app.json("refuse", "--request", request_id)
    assert answered["state"] == "refused"


def test_nothing_pending_exits_3(app: App) -> None:
    app.enroll()
    assert one_line_error(app("approve", "--pin", "1234", "--wait", "0.6"), 3) == (
        "eid-app: no pending request within 0.6 s"
    )
    assert one_line_error(app("refuse"), 3) == "eid-app: no pending request"


def test_usage_errors_exit_2(app: App) -> None:
    assert app("approve", "--pin", "1234", "--wait", "-1").exit_code == 2
    assert app("unblock", "--key", "both", "--puk", "1", "--new-pin", "1").exit_code == 2
    assert app("frobnicate").exit_code == 2


def test_no_wallet(app: App) -> None:
    assert "run eid-app enroll first" in one_line_error(app("pending"), 1)


def test_unreachable_service(app: App) -> None:
    app.enroll()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    message = one_line_error(app("pending", transport=httpx.MockTransport(down)), 1)
    assert message == "eid-app: cannot reach the service at https://eid.example: connection refused"


def test_the_pin_is_asked_after_the_code_is_shown(app: App) -> None:
    app.enroll()
    app.fake.open_request("auth", HELLO)
    context = AppContext(transport=app.fake.transport())
    result = CliRunner().invoke(cli, ["--wallet", str(app.directory), "approve"], obj=context, input="1234\n")
    assert result.exit_code == 0, result.stderr
    shown, asked = result.stdout.index("verification code 7712"), result.stdout.index("then enter PIN1")
    assert shown < asked
    assert result.stdout.strip().endswith("Answer: completed")
