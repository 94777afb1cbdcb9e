"""Helpers for the OpenID Connect tests: a relying party, a browser, an enrolled citizen."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from sqlmodel import Session

from api import db
from identity import citizens
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


ALL_SCOPES = ("--scope", "openid", "--scope", "profile", "--scope", "offline_access")


@pytest.fixture(scope="session")
def rp(server: RunningServer) -> RelyingParty:
    """A confidential, first-party relying party allowed every citizen scope (shared: stateless)."""
    return register_rp(server, *ALL_SCOPES)


@pytest.fixture(scope="session")
def other_rp(server: RunningServer) -> RelyingParty:
    """A second such relying party, for what must not cross from one client to another."""
    return register_rp(server, *ALL_SCOPES)


@dataclass
class Citizen:
    code: str
    app: ProtocolApp

    @property
    def sub(self) -> str:
        return f"EE{self.code}"


def enrol_citizen(server: RunningServer) -> Citizen:
    """A new citizen whose app is enrolled over HTTP (registered in process: ``eid citizen
    add`` is the same domain call, but starting the CLI costs seconds per test)."""
    code = fresh_code()
    with database(server) as session:
        registration = citizens.register(
            session, personal_code=code, given_name="Mari-Liis", family_name="Männik", actor="tests"
        )
    app = ProtocolApp(server.url)
    app.enrol(registration.activation_code)
    return Citizen(code, app)


@pytest.fixture
def citizen(server: RunningServer) -> Citizen:
    return enrol_citizen(server)


def code_request(
    rp: RelyingParty, *, with_pkce: bool = True, **extra: str
) -> tuple[dict[str, str], str | None]:
    """Parameters of an authorization request (openid, S256 PKCE, a state) and its verifier."""
    params = {
        "client_id": rp.client_id,
        "response_type": "code",
        "scope": "openid",
        "redirect_uri": rp.redirect_uri,
        "state": secrets.token_urlsafe(12),
    }
    verifier = None
    if with_pkce:
        verifier, challenge = pkce()
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return params | extra, verifier


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

    def log_in(self, params: dict[str, str], citizen: Citizen) -> dict[str, str]:
        """A whole authorization: request, login page, app approval, back at the client."""
        to_login = self.authorize(params)
        assert to_login.status_code == 303, to_login.text
        assert to_login.headers["location"].startswith("/login?request="), to_login.headers["location"]
        back = self.login_with_app(to_login.headers["location"], citizen)
        assert back.status_code == 303, back.text
        return callback_params(back)

    def authorize_silently(self, params: dict[str, str]) -> dict[str, str]:
        """An authorization answered at once (from the login session, or with an error)."""
        response = self.authorize(params)
        assert response.status_code in (302, 303), response.text
        return callback_params(response)

    def login_page(self, params: dict[str, str]) -> str:
        """The HTML of the login page an authorization request leads to."""
        to_login = self.authorize(params)
        assert to_login.status_code == 303, to_login.text
        assert to_login.headers["location"].startswith("/login?request="), to_login.headers["location"]
        page = self.http.get(to_login.headers["location"])
        assert page.status_code == 200
        return page.text


@pytest.fixture
def browser(server: RunningServer) -> Iterator[Browser]:
    b = Browser(server)
    yield b
    b.close()


@pytest.fixture
def browsers(server: RunningServer) -> Iterator[list[Browser]]:
    """Extra browsers (separate cookie jars), created with ``browsers.append(Browser(server))``."""
    opened: list[Browser] = []
    yield opened
    for b in opened:
        b.close()


# The relying party's side: token endpoint, userinfo, ID token checks.


def token_request(server: RunningServer, rp: RelyingParty, form: dict[str, str]) -> httpx.Response:
    """POST to the token endpoint, authenticated as ``rp`` (client_secret_basic, or none if public)."""
    if rp.client_secret is None:
        return httpx.post(server.url + "/oauth/token", data={"client_id": rp.client_id, **form})
    return httpx.post(server.url + "/oauth/token", data=form, auth=(rp.client_id, rp.client_secret))


def exchange(
    server: RunningServer,
    rp: RelyingParty,
    code: str,
    verifier: str | None,
    *,
    redirect_uri: str | None = REDIRECT,
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code}
    if verifier is not None:
        form["code_verifier"] = verifier
    if redirect_uri is not None:
        form["redirect_uri"] = redirect_uri
    return token_request(server, rp, form)


def tokens_for(
    server: RunningServer, rp: RelyingParty, callback: dict[str, str], verifier: str | None
) -> dict[str, Any]:
    """Exchange the code of a successful callback; fails the test unless it works."""
    assert "code" in callback, callback
    response = exchange(server, rp, callback["code"], verifier)
    assert response.status_code == 200, response.text
    return dict(response.json())


def id_token_of(
    server: RunningServer, rp: RelyingParty, callback: dict[str, str], verifier: str | None
) -> dict[str, Any]:
    """The verified claims of the ID token the callback's code gives."""
    return verify_id_token(server, tokens_for(server, rp, callback, verifier)["id_token"], rp)


def userinfo(server: RunningServer, access_token: str) -> httpx.Response:
    return httpx.get(server.url + "/oauth/userinfo", headers={"Authorization": f"Bearer {access_token}"})


def jwks(server: RunningServer) -> jwt.PyJWKSet:
    response = httpx.get(server.url + "/oauth/jwks")
    assert response.status_code == 200
    return jwt.PyJWKSet.from_dict(response.json())


def verify_id_token(server: RunningServer, id_token: str, rp: RelyingParty) -> dict[str, Any]:
    """Check an ID token as a relying party would, with PyJWT and the published JWKS."""
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next(k for k in jwks(server).keys if k.key_id == kid)
    return dict(
        jwt.decode(
            id_token,
            key.key,
            algorithms=[key.algorithm_name],
            audience=rp.client_id,
            issuer=server.url,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    )


@contextmanager
def database(server: RunningServer) -> Iterator[Session]:
    """A session on the running server's database, for what HTTP cannot reach (time, metadata)."""
    engine = db.make_engine(server.env.settings.resolved_database_url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def callback_params(response: httpx.Response) -> dict[str, str]:
    location = response.headers["location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
