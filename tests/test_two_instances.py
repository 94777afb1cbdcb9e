"""Two ``eid serve`` processes sharing one PostgreSQL database and one data directory, as
behind a load balancer: a login begun on one finishes on the other, and so does a signing
session. Nothing either instance needs lives only in the other's memory.

Uses TEST_POSTGRES_URL when set (``make test-postgres``), otherwise PostgreSQL at
127.0.0.1:5432 when it answers; skipped when there is none.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from sqlmodel import Session

from api import db
from api.services import init_service
from identity import citizens
from identity.oauth import clients
from tests.conftest import EID, ServiceEnv, free_port, make_env, wait_until_serving
from tests.identity.oidc.conftest import REDIRECT, RelyingParty, pkce
from tests.identity.protocol_client import ProtocolApp
from tests.identity.test_login_with_app import fresh_code
from tests.signing.conftest import make_pdf
from tests.signing.witnesses import pdfsig

pytestmark = pytest.mark.server
POSTGRES = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")


def _admin_url() -> str:
    return POSTGRES.replace("postgresql+psycopg", "postgresql") + "/postgres"


def _new_database() -> str:
    import psycopg

    name = f"eid_pair_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(_admin_url(), autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {POSTGRES}: {exc}")
    return name


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Pair:
    a: str
    b: str
    env: ServiceEnv


def _spawn(env: ServiceEnv, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [EID, "serve", "--port", str(port)], env=env.env, stdout=out, stderr=subprocess.STDOUT
        )


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("pair")
    port_a, port_b = free_port(), free_port()
    # One public URL for both, as behind a load balancer: tokens and cookies name it.
    public = f"http://127.0.0.1:{port_a}"
    env = make_env(folder / "data", public)
    name = None  # under TEST_POSTGRES_URL make_env made a database, dropped with the others
    if env.settings.database_url is None:
        name = _new_database()
        url = f"{POSTGRES}/{name}"
        env.settings = env.settings.model_copy(update={"database_url": url})
        env.env["EID_DATABASE_URL"] = url
    processes: list[subprocess.Popen[bytes]] = []
    try:
        init_service(env.settings)
        # Both start at once (start-up is mostly imports): the test waits for the slower.
        for port, log in ((port_a, folder / "a.log"), (port_b, folder / "b.log")):
            processes.append(_spawn(env, port, log))
        wait_until_serving(processes[0], public, folder / "a.log", path="/readyz", seconds=90)
        wait_until_serving(
            processes[1], f"http://127.0.0.1:{port_b}", folder / "b.log", path="/readyz", seconds=90
        )
        yield Pair(
            a=public,
            b=f"http://127.0.0.1:{port_b}",
            env=env,
        )
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if name is not None:
            _drop_database(name)


@dataclass
class RoutedApp(ProtocolApp):
    """The citizen app: tokens name the public URL, requests go to ``target``."""

    target: str = ""

    def endpoint(self) -> str:
        return self.target or self.base_url


def _citizen_and_client(pair: Pair) -> tuple[str, RoutedApp, RelyingParty]:
    """A citizen with an enrolled app and a first-party relying party, registered in
    process (the same domain calls as ``eid citizen add`` / ``eid client add``)."""
    code = fresh_code()
    engine = db.make_engine(pair.env.settings.resolved_database_url)
    try:
        with Session(engine) as session:
            registration = citizens.register(
                session, personal_code=code, given_name="Mari-Liis", family_name="Männik", actor="tests"
            )
            created = clients.register(
                session,
                name="Tax and Customs Board",
                redirect_uris=[REDIRECT],
                public=False,
                scopes=["openid", "profile"],
                first_party=True,
                extra_metadata={},
                actor="tests",
            )
            rp = RelyingParty(created.client.client_id, created.client_secret)
    finally:
        engine.dispose()
    app = RoutedApp(pair.a)
    app.enrol(registration.activation_code)
    return code, app, rp


def _metrics(url: str) -> dict[str, float]:
    values = {}
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("eid_") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def _delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def test_login_begun_on_one_instance_finishes_on_the_other(pair: Pair) -> None:
    code, app, rp = _citizen_and_client(pair)
    before_a, before_b = _metrics(pair.a), _metrics(pair.b)
    verifier, challenge = pkce()
    params = {
        "client_id": rp.client_id,
        "response_type": "code",
        "scope": "openid profile",
        "redirect_uri": REDIRECT,
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    # One browser (one cookie jar: cookies ignore the port) talking to both instances.
    with httpx.Client() as browser:
        to_login = browser.get(pair.a + "/oauth/authorize?" + urlencode(params))
        assert to_login.status_code == 303 and to_login.headers["location"].startswith("/login?request=")
        request_id = parse_qs(urlsplit(to_login.headers["location"]).query)["request"][0]
        assert browser.get(pair.a + to_login.headers["location"]).status_code == 200
        started = browser.post(pair.a + "/api/v1/auth/app", json={"personal_code": code})
        assert started.status_code == 201, started.text

        app.target = pair.b  # the app's requests land on the other instance
        pending = app.pending()
        request = next(r for r in pending if r["id"] == started.json()["request_id"])
        assert app.answer(request).status_code == 200

        status = browser.get(f"{pair.b}/api/v1/auth/app/{started.json()['request_id']}").json()
        assert status["state"] == "completed"
        back = browser.get(f"{pair.b}/oauth/authorize/resume?request={request_id}")
        assert back.status_code == 303, back.text
    location = back.headers["location"]
    assert location.startswith(REDIRECT)
    callback = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert callback["state"] == params["state"]

    # The relying party exchanges the code at the first instance.
    tokens = httpx.post(
        pair.a + "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": callback["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=(rp.client_id, rp.client_secret or ""),
    )
    assert tokens.status_code == 200, tokens.text
    id_token = tokens.json()["id_token"]
    keys = jwt.PyJWKSet.from_dict(httpx.get(pair.b + "/oauth/jwks").json())
    key = next(k for k in keys.keys if k.key_id == jwt.get_unverified_header(id_token)["kid"])
    claims: dict[str, Any] = jwt.decode(
        id_token, key.key, algorithms=[key.algorithm_name], audience=rp.client_id, issuer=pair.a
    )
    assert claims["sub"] == f"EE{code}" and claims["nonce"] == params["nonce"]

    after_a, after_b = _metrics(pair.a), _metrics(pair.b)
    assert _delta(before_b, after_b, "eid_approvals_answered_total") == 1
    assert _delta(before_b, after_b, "eid_logins_total") == 1  # the code left from B
    assert _delta(before_a, after_a, "eid_logins_total") == 0


def test_signing_session_begun_on_one_instance_finishes_on_the_other(pair: Pair, tmp_path: Path) -> None:
    _code, app, _rp = _citizen_and_client(pair)
    before_b = _metrics(pair.b)
    app.target = pair.a
    pdf = make_pdf(tmp_path / "in.pdf").read_bytes()
    started = app.call(
        "POST",
        "/api/v1/signing?level=B-LTA&name=contract.pdf",
        token=app.token("POST", "/api/v1/signing"),
        content=pdf,
        headers={"content-type": "application/pdf"},
    )
    assert started.status_code == 201, started.text
    session = started.json()

    app.target = pair.b
    request = next(r for r in app.pending() if r["kind"] == "sign")
    assert request["verification_code"] == session["verification_code"]
    assert app.answer(request).status_code == 200
    # B finishes the PDF from what A prepared in the shared data directory.
    status = app.call("GET", f"/api/v1/signing/{session['id']}").json()
    assert status["state"] == "completed", status
    signed = app.call("GET", f"/api/v1/signing/{session['id']}/document")
    assert signed.status_code == 200 and signed.content.startswith(b"%PDF")
    out = tmp_path / "signed.pdf"
    out.write_bytes(signed.content)

    # Independent witness: poppler's pdfsig, trusting the pair's root.
    root = tmp_path / "root.crt"
    root.write_bytes(httpx.get(pair.a + "/ca/root.crt").content)
    nss = tmp_path / "nss"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{nss}"], check=True)
    form = "PEM" if root.read_bytes().startswith(b"-----") else "DER"
    pem = root if form == "PEM" else tmp_path / "root.pem"
    if form == "DER":
        subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(root), "-out", str(pem)], check=True)
    subprocess.run(
        ["certutil", "-A", "-n", "root", "-t", "C,C,C", "-i", str(pem), "-d", f"sql:{nss}"], check=True
    )
    report = pdfsig(f"sql:{nss}", out)
    assert "Signature Validation: Signature is Valid." in report[0]
    assert "Certificate Validation: Certificate is Trusted." in report[0]
    assert len(report) == 2  # the signature and the archive time stamp (B-LTA)

    after_b = _metrics(pair.b)
    assert _delta(before_b, after_b, "eid_signatures_completed_total") == 1
    assert _delta(before_b, after_b, "eid_approvals_answered_total") == 1
    assert json.loads(httpx.get(pair.b + "/readyz").text)["status"] == "ready"
