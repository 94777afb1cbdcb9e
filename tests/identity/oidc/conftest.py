"""Helpers for the OpenID Connect tests: a relying party, a browser, an enrolled citizen."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.conftest import RunningServer
from tests.identity.protocol_client import ProtocolApp
from tests.identity.test_login_with_app import fresh_code

REDIRECT = "https://rp.example/callback"


@dataclass
class RelyingParty:
    client_id: str
    client_secret: str | None
    redirect_uri: str = REDIRECT


def register_rp(
    server: RunningServer, *extra: str, first_party: bool = True, public: bool = False
) -> RelyingParty:
    args = ["client", "add", "--name", "Tax and Customs Board", "--redirect-uri", REDIRECT, "--json", *extra]
    if first_party:
        args.append("--first-party")
    if public:
        args.append("--public")
    created = json.loads(server.env.run_eid(*args).stdout)
    return RelyingParty(created["client_id"], created["client_secret"])


@dataclass
class Citizen:
    code: str
    app: ProtocolApp


@pytest.fixture
def citizen(server: RunningServer) -> Citizen:
    code = fresh_code()
    out = json.loads(
        server.env.run_eid(
            "citizen",
            "add",
            "--id-code",
            code,
            "--given-name",
            "Mari-Liis",
            "--family-name",
            "Männik",
            "--json",
        ).stdout
    )
    app = ProtocolApp(server.url)
    app.enrol(out["activation_code"])
    return Citizen(code, app)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Browser:
    """Follows the service's own pages the way login.js does."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url)

    def close(self) -> None:
        self.http.close()

    def authorize(self, params: dict[str, str]) -> httpx.Response:
        return self.http.get("/oauth/authorize?" + urlencode(params))

    def login_with_app(
        self, login_location: str, citizen: Citizen, *, approve: bool = True
    ) -> httpx.Response:
        """From the /login page to the response that leaves for the client."""
        request_id = parse_qs(urlsplit(login_location).query)["request"][0]
        assert self.http.get(login_location).status_code == 200
        started = self.http.post("/api/v1/auth/app", json={"personal_code": citizen.code})
        assert started.status_code == 201, started.text
        pending = citizen.app.pending()
        request = next(r for r in pending if r["id"] == started.json()["request_id"])
        if approve:
            assert citizen.app.answer(request).status_code == 200
        else:
            citizen.app.refuse(request)
        status = self.http.get(f"/api/v1/auth/app/{started.json()['request_id']}").json()
        assert status["state"] == ("completed" if approve else "refused")
        return self.http.get(f"/oauth/authorize/resume?request={request_id}")


@pytest.fixture
def browser(server: RunningServer) -> Iterator[Browser]:
    b = Browser(server)
    yield b
    b.close()


def callback_params(response: httpx.Response) -> dict[str, str]:
    location = response.headers["location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
