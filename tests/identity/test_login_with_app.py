"""End to end: register, enrol, log in through the approval protocol, self-service."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asn1crypto import pem
from cryptography.hazmat.primitives.asymmetric import ec

from identity.approvals import verification_code
from identity.personal_codes import estonian_check_digit
from tests import openssl
from tests.conftest import RunningServer
from tests.identity.protocol_client import ProtocolApp, b64

_SERIALS = itertools.count(100)


def fresh_code() -> str:
    """A valid personal code no other test uses (born 1980-01-01, serial from a counter)."""
    first_ten = f"3800101{next(_SERIALS):03d}"
    return first_ten + str(estonian_check_digit(first_ten))


def register(server: RunningServer, given: str = "Jaak-Kristjan", family: str = "Jõeorg") -> tuple[str, str]:
    while True:
        code = fresh_code()
        result = server.env.run_eid(
            "citizen",
            "add",
            "--id-code",
            code,
            "--given-name",
            given,
            "--family-name",
            family,
            "--json",
            check=False,
        )
        if result.returncode == 0:
            return code, json.loads(result.stdout)["activation_code"]


@pytest.fixture
def enrolled(server: RunningServer) -> tuple[ProtocolApp, str]:
    code, activation = register(server)
    app = ProtocolApp(server.url)
    app.enrol(activation)
    return app, code


_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_browsers() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def new_browser(server: RunningServer) -> httpx.Client:
    browser = httpx.Client(base_url=server.url)
    _OPEN.append(browser)
    return browser


def start_login(server: RunningServer, code: str) -> tuple[httpx.Client, dict[str, str]]:
    browser = new_browser(server)
    response = browser.post("/api/v1/auth/app", json={"personal_code": code})
    assert response.status_code == 201, response.text
    return browser, response.json()


def test_enrolled_certificates_verify_with_openssl(
    enrolled: tuple[ProtocolApp, str], pem_files: dict[str, Path], tmp_path: Path, server: RunningServer
) -> None:
    app, code = enrolled
    assert app.citizen["family_name"] == "Jõeorg"
    for name, der in (("auth", app.auth_certificate), ("sign", app.sign_certificate)):
        path = tmp_path / f"{name}.pem"
        path.write_bytes(pem.armor("CERTIFICATE", der))
        assert openssl.verify(path, pem_files) == f"{path}: OK"
        out = openssl.ocsp(server.url, pem_files, path)
        assert f"{path}: good" in out
        subject = subprocess.run(
            ["openssl", "x509", "-in", str(path), "-noout", "-subject", "-nameopt", "utf8,sep_comma_plus"],
            capture_output=True,
            text=True,
        ).stdout
        assert (
            f"CN=JÕEORG\\,JAAK-KRISTJAN\\,{code}" in subject or f"CN=JÕEORG,JAAK-KRISTJAN,{code}" in subject
        )


def test_login_with_the_app(enrolled: tuple[ProtocolApp, str], server: RunningServer) -> None:
    app, code = enrolled
    browser, started = start_login(server, code)
    pending = app.pending()
    assert [r["id"] for r in pending] == [started["request_id"]]
    request = pending[0]
    assert request["verification_code"] == started["verification_code"]
    assert verification_code(base64.b64decode(request["hash"])) == request["verification_code"]
    assert request["display_text"].startswith("Log in to")

    assert browser.get(f"/api/v1/auth/app/{started['request_id']}").json()["state"] == "pending"
    answered = app.answer(request)
    assert answered.status_code == 200, answered.text
    assert answered.json()["state"] == "completed"

    status = browser.get(f"/api/v1/auth/app/{started['request_id']}").json()
    assert status["state"] == "completed"
    identity = status["identity"]
    assert identity["sub"] == f"EE{code}"
    assert identity["family_name"] == "Jõeorg"
    assert identity["amr"] == ["swk", "pin", "mfa"]
    assert identity["acr"] == "substantial"
    # The result is taken once: a second poll does not log in again.
    assert browser.get(f"/api/v1/auth/app/{started['request_id']}").json().get("identity") is None
    me = browser.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["personal_code"] == code
    # A replayed answer changes nothing.
    replay = app.answer(request)
    assert replay.status_code == 409
    assert "already completed" in replay.json()["detail"]


def test_another_browser_cannot_ride_on_the_request(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    app, code = enrolled
    _browser, started = start_login(server, code)
    stranger = new_browser(server)
    assert stranger.get(f"/api/v1/auth/app/{started['request_id']}").status_code == 404
    app.answer(app.pending()[0])
    response = stranger.get(f"/api/v1/auth/app/{started['request_id']}")
    assert response.status_code == 404
    assert "identity" not in response.text


def test_refusal(enrolled: tuple[ProtocolApp, str], server: RunningServer) -> None:
    app, code = enrolled
    browser, started = start_login(server, code)
    assert app.refuse(app.pending()[0]).json()["state"] == "refused"
    assert browser.get(f"/api/v1/auth/app/{started['request_id']}").json()["state"] == "refused"
    assert browser.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("wrong", ["signing-key", "tampered", "other-key"])
def test_wrong_answers_fail_the_request(
    enrolled: tuple[ProtocolApp, str], server: RunningServer, wrong: str
) -> None:
    app, code = enrolled
    browser, started = start_login(server, code)
    request = app.pending()[0]
    if wrong == "signing-key":
        response = app.answer(request, key=app.sign_key, certificate=app.sign_certificate)
        expected = "needs the authentication key"
    elif wrong == "tampered":
        good = app.auth_key.sign(
            b"x" * 32,
            __import__("cryptography.hazmat.primitives.asymmetric.ec", fromlist=["ECDSA"]).ECDSA(
                __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()
            ),
        )
        response = app.answer(request, signature=good)
        expected = "does not verify"
    else:
        response = app.answer(request, key=ec.generate_private_key(ec.SECP256R1()))
        expected = "does not verify"
    assert response.status_code == 409
    assert expected in response.json()["detail"]
    status = browser.get(f"/api/v1/auth/app/{started['request_id']}").json()
    assert status["state"] == "failed"
    assert expected in status["reason"]


def test_revoked_certificate_cannot_log_in(enrolled: tuple[ProtocolApp, str], server: RunningServer) -> None:
    from cryptography import x509

    app, code = enrolled
    serial = format(x509.load_der_x509_certificate(app.auth_certificate).serial_number, "x")
    server.env.run_eid("cert", "revoke", serial)
    _browser, _started = start_login(server, code)
    response = app.answer(app.pending()[0])
    assert response.status_code == 409
    assert "revoked" in response.json()["detail"]


def test_app_tokens_are_single_use_and_bound(enrolled: tuple[ProtocolApp, str]) -> None:
    app, _code = enrolled
    token = app.token("GET", "/api/v1/app/requests")
    assert app.call("GET", "/api/v1/app/requests", token=token).status_code == 200
    replay = app.call("GET", "/api/v1/app/requests", token=token)
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]
    wrong_url = app.call("GET", "/api/v1/app/requests", token=app.token("GET", "/api/v1/app/requests/x"))
    assert wrong_url.status_code == 401 and "another URL" in wrong_url.json()["detail"]
    wrong_method = app.call("GET", "/api/v1/app/requests", token=app.token("POST", "/api/v1/app/requests"))
    assert wrong_method.status_code == 401
    old = app.call(
        "GET", "/api/v1/app/requests", token=app.token("GET", "/api/v1/app/requests", iat=1, exp=61)
    )
    assert old.status_code == 401
    assert app.call("GET", "/api/v1/app/requests", token="garbage").status_code == 401
    none_alg = "eyJhbGciOiJub25lIiwidHlwIjoiZWlkLWFwcCtqd3QiLCJraWQiOiJ4In0.e30."
    assert app.call("GET", "/api/v1/app/requests", token=none_alg).status_code == 401
    assert httpx.get(app.base_url + "/api/v1/app/requests").status_code == 401


def test_activation_code_is_single_use(server: RunningServer) -> None:
    _code, activation = register(server)
    ProtocolApp(server.url).enrol(activation)
    again = httpx.post(f"{server.url}/api/v1/enrolment", json={"activation_code": activation})
    assert again.status_code == 400
    assert again.json()["detail"] == "the activation code is unknown, expired or already used"
    assert (
        httpx.post(f"{server.url}/api/v1/enrolment", json={"activation_code": "NOPE-NOPE-NOPE"}).status_code
        == 400
    )


def test_enrolment_rejects_bad_proofs(server: RunningServer) -> None:
    _code, activation = register(server)
    started = httpx.post(f"{server.url}/api/v1/enrolment", json={"activation_code": activation}).json()
    app = ProtocolApp(server.url)
    from tests.identity.protocol_client import pop, spki

    challenge = base64.b64decode(started["challenge"])
    payload = {
        "auth_key": {
            "public_key": b64(spki(app.auth_key)),
            "proof": b64(pop(app.auth_key, "sign", challenge)),
        },
        "sign_key": {
            "public_key": b64(spki(app.sign_key)),
            "proof": b64(pop(app.sign_key, "sign", challenge)),
        },
        "device_key": {
            "public_key": b64(spki(app.device_key)),
            "proof": b64(pop(app.device_key, "device", challenge)),
        },
    }
    response = httpx.post(f"{server.url}/api/v1/enrolment/{started['enrolment_id']}/complete", json=payload)
    assert response.status_code == 400
    assert "auth key: proof of possession failed" in response.json()["detail"]
    payload["auth_key"]["proof"] = "!!not base64"
    response = httpx.post(f"{server.url}/api/v1/enrolment/{started['enrolment_id']}/complete", json=payload)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_re_enrolment_revokes_the_old_certificates(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    old, code = enrolled
    activation = json.loads(
        server.env.run_eid("citizen", "activation-code", "--id-code", code, "--json").stdout
    )
    new = ProtocolApp(server.url)
    new.enrol(activation["activation_code"])
    shown = json.loads(server.env.run_eid("citizen", "show", "--id-code", code, "--json").stdout)
    states = sorted((c["profile"], c["state"]) for c in shown["certificates"])
    assert states == [
        ("citizen-auth", "issued"),
        ("citizen-auth", "revoked"),
        ("citizen-sign", "issued"),
        ("citizen-sign", "revoked"),
    ]
    # The old device is disabled.
    assert old.call("GET", "/api/v1/app/requests").status_code == 401


def test_self_service_suspend_resume_and_activity(
    enrolled: tuple[ProtocolApp, str], server: RunningServer, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    app, code = enrolled
    browser, started = start_login(server, code)
    app.answer(app.pending()[0])
    browser.get(f"/api/v1/auth/app/{started['request_id']}")
    certificates = browser.get("/api/v1/me/certificates").json()
    signing = next(c for c in certificates if c["purpose"] == "signing")
    assert browser.post(f"/api/v1/me/certificates/{signing['serial']}/suspend").json()["suspended"] is True

    cert = tmp_path / "sign.pem"
    cert.write_bytes(pem.armor("CERTIFICATE", app.sign_certificate))
    out = openssl.ocsp(server.url, pem_files, cert)
    assert f"{cert}: revoked" in out and "certificateHold" in out

    assert browser.post(f"/api/v1/me/certificates/{signing['serial']}/resume").json()["state"] == "issued"
    assert f"{cert}: good" in openssl.ocsp(server.url, pem_files, cert)

    kinds = [a["kind"] for a in browser.get("/api/v1/me/activity").json()]
    assert kinds[:3] == ["certificate.resume", "certificate.suspend", "login"]
    # Not someone else's certificate.
    assert browser.post("/api/v1/me/certificates/abc/revoke").status_code == 404


def test_unknown_or_invalid_personal_code(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/api/v1/auth/app", json={"personal_code": "38001085719"})
    assert response.status_code == 422
    assert "check digit" in response.json()["detail"]
    response = httpx.post(f"{server.url}/api/v1/auth/app", json={"personal_code": "39001010019"})
    assert response.status_code in (404, 422)


def test_suspended_citizen_cannot_start_a_login(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    _app, code = enrolled
    server.env.run_eid("citizen", "set-state", "--id-code", code, "suspended")
    response = httpx.post(f"{server.url}/api/v1/auth/app", json={"personal_code": code})
    assert response.status_code == 403
    server.env.run_eid("citizen", "set-state", "--id-code", code, "active")
    assert httpx.post(f"{server.url}/api/v1/auth/app", json={"personal_code": code}).status_code == 201
