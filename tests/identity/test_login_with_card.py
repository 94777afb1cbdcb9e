"""End to end: a Web eID token from a card (our CA's certificate) logs in over HTTP."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keys.issuance import Purpose
from keys.profiles import CitizenSubject
from tests.conftest import IssuedCitizen, RunningServer, issue_citizen
from tests.identity.test_login_with_app import fresh_code


def card_token(card: IssuedCitizen, origin: str, nonce: str) -> dict[str, str]:
    """What the Web eID app sends: ES256 over H(origin) || H(nonce), raw r||s."""
    signed = hashlib.sha256(origin.encode()).digest() + hashlib.sha256(nonce.encode()).digest()
    r, s = decode_dss_signature(card.private_key.sign(signed, ec.ECDSA(hashes.SHA256())))
    return {
        "unverifiedCertificate": base64.b64encode(card.der).decode(),
        "algorithm": "ES256",
        "signature": base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode(),
        "format": "web-eid:1.0",
        "appVersion": "https://web-eid.eu/web-eid-app/releases/2.5.0",
    }


@pytest.fixture
def card(server: RunningServer) -> Iterator[tuple[IssuedCitizen, str]]:
    code = fresh_code()
    activation = server.env.run_eid(
        "citizen", "add", "--id-code", code, "--given-name", "Mari", "--family-name", "Männik"
    )
    assert activation.returncode == 0
    # The citizen enrols (becomes active); the card holds another authentication key of theirs.
    from tests.identity.protocol_client import ProtocolApp

    app = ProtocolApp(server.url)
    app.enrol(activation.stdout.split("activation code: ")[1].split()[0])
    subject = CitizenSubject(country="EE", given_name="Mari", family_name="Männik", personal_code=code)
    yield issue_citizen(server.env, Purpose.AUTHENTICATION, subject=subject), code


def test_card_login(server: RunningServer, card: tuple[IssuedCitizen, str]) -> None:
    issued, code = card
    with httpx.Client(base_url=server.url) as browser:
        nonce = browser.get("/api/v1/auth/web-eid/challenge").json()["nonce"]
        token = card_token(issued, server.url, nonce)
        response = browser.post("/api/v1/auth/web-eid/login", json={"auth_token": token, "nonce": nonce})
        assert response.status_code == 200, response.text
        identity = response.json()
        assert identity["sub"] == f"EE{code}"
        assert identity["acr"] == "high" and identity["amr"] == ["hwk", "sc", "pin", "mfa"]
        assert browser.get("/api/v1/me").json()["method"] == "card"

        replay = browser.post("/api/v1/auth/web-eid/login", json={"auth_token": token, "nonce": nonce})
        assert replay.status_code == 401
        assert "already used" in replay.json()["detail"]


def test_nonce_from_another_browser_is_refused(
    server: RunningServer, card: tuple[IssuedCitizen, str]
) -> None:
    issued, _code = card
    with httpx.Client(base_url=server.url) as first, httpx.Client(base_url=server.url) as second:
        nonce = first.get("/api/v1/auth/web-eid/challenge").json()["nonce"]
        second.get("/api/v1/auth/web-eid/challenge")
        response = second.post(
            "/api/v1/auth/web-eid/login",
            json={"auth_token": card_token(issued, server.url, nonce), "nonce": nonce},
        )
        assert response.status_code == 401


def test_wrong_origin_and_revoked_card(server: RunningServer, card: tuple[IssuedCitizen, str]) -> None:
    issued, _code = card
    with httpx.Client(base_url=server.url) as browser:
        nonce = browser.get("/api/v1/auth/web-eid/challenge").json()["nonce"]
        token = card_token(issued, "https://evil.example", nonce)
        response = browser.post("/api/v1/auth/web-eid/login", json={"auth_token": token, "nonce": nonce})
        assert response.status_code == 401
        assert "signature" in response.json()["detail"]

        server.env.run_eid("cert", "revoke", issued.record.serial)
        nonce = browser.get("/api/v1/auth/web-eid/challenge").json()["nonce"]
        token = card_token(issued, server.url, nonce)
        response = browser.post("/api/v1/auth/web-eid/login", json={"auth_token": token, "nonce": nonce})
        assert response.status_code == 401
        assert "revoked" in response.json()["detail"]


def test_malformed_login_bodies(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as browser:
        nonce = browser.get("/api/v1/auth/web-eid/challenge").json()["nonce"]
        for body in ({}, {"auth_token": "x", "nonce": nonce}, {"auth_token": {}, "nonce": "short"}):
            response = browser.post("/api/v1/auth/web-eid/login", json=body)
            assert response.status_code == 422, body
        response = browser.post(
            "/api/v1/auth/web-eid/login", json={"auth_token": {"format": 1}, "nonce": nonce}
        )
        assert response.status_code == 401
