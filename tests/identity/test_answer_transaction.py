"""The app's answer and its request token's jti are written in one transaction.

The answer route records the token's ``jti`` right before the answer's own write (one
commit per answer). These tests hold it to what a separate commit guaranteed: a token is
used up by any answer, right or wrong, and a replay is told so (401) before anything else.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from sqlalchemy import update

from identity.models import ApprovalRequest
from keys.models import utcnow
from tests.conftest import RunningServer
from tests.identity.protocol_client import ProtocolApp
from tests.identity.test_login_with_app import register

_OPEN: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_browsers() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture
def enrolled(server: RunningServer) -> tuple[ProtocolApp, str]:
    code, activation = register(server)
    app = ProtocolApp(server.url)
    app.enrol(activation)
    return app, code


def start_login(server: RunningServer, code: str) -> tuple[httpx.Client, str]:
    browser = httpx.Client(base_url=server.url)
    _OPEN.append(browser)
    response = browser.post("/api/v1/auth/app", json={"personal_code": code})
    assert response.status_code == 201, response.text
    return browser, str(response.json()["request_id"])


def answer_body(app: ProtocolApp, request: dict[str, object], key: ec.EllipticCurvePrivateKey) -> str:
    digest = base64.b64decode(str(request["hash"]))
    signature = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    return json.dumps(
        {
            "decision": "approve",
            "certificate": base64.b64encode(app.auth_certificate).decode(),
            "signature": base64.b64encode(signature).decode(),
        }
    )


def post(app: ProtocolApp, path: str, token: str, body: str) -> httpx.Response:
    return app.call("POST", path, token=token, content=body, headers={"Content-Type": "application/json"})


def test_a_wrong_answer_uses_its_token_up(enrolled: tuple[ProtocolApp, str], server: RunningServer) -> None:
    app, code = enrolled
    browser, request_id = start_login(server, code)
    request = app.pending()[0]
    path = f"/api/v1/app/requests/{request_id}"
    token = app.token("POST", path)

    wrong = post(app, path, token, answer_body(app, request, ec.generate_private_key(ec.SECP256R1())))
    assert wrong.status_code == 409 and "does not verify" in wrong.json()["detail"]
    assert browser.get(f"/api/v1/auth/app/{request_id}").json()["state"] == "failed"

    replay = post(app, path, token, answer_body(app, request, app.auth_key))
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]


def test_a_token_refused_for_another_reason_is_used_up_too(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    app, code = enrolled
    _browser, request_id = start_login(server, code)
    request = app.pending()[0]
    path = f"/api/v1/app/requests/{request_id}"
    assert app.answer(request).status_code == 200

    token = app.token("POST", path)
    again = post(app, path, token, answer_body(app, request, app.auth_key))
    assert again.status_code == 409 and "already completed" in again.json()["detail"]
    replay = post(app, path, token, answer_body(app, request, app.auth_key))
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]

    unknown = "/api/v1/app/requests/ar-000000000000000000000000"
    token = app.token("POST", unknown)
    assert post(app, unknown, token, answer_body(app, request, app.auth_key)).status_code == 404
    assert post(app, unknown, token, answer_body(app, request, app.auth_key)).status_code == 401


def test_a_completed_answer_replayed_is_401(enrolled: tuple[ProtocolApp, str], server: RunningServer) -> None:
    app, code = enrolled
    browser, request_id = start_login(server, code)
    request = app.pending()[0]
    path = f"/api/v1/app/requests/{request_id}"
    token = app.token("POST", path)
    body = answer_body(app, request, app.auth_key)

    first = post(app, path, token, body)
    assert first.status_code == 200 and first.json()["state"] == "completed"
    replay = post(app, path, token, body)
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]
    status = browser.get(f"/api/v1/auth/app/{request_id}").json()
    assert status["state"] == "completed" and status["identity"]["sub"] == f"EE{code}"


def test_one_token_sent_twice_at_once_is_accepted_once(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    app, code = enrolled
    _browser, request_id = start_login(server, code)
    request = app.pending()[0]
    path = f"/api/v1/app/requests/{request_id}"
    token = app.token("POST", path)
    body = answer_body(app, request, app.auth_key)
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def send() -> None:
        barrier.wait()
        statuses.append(post(app, path, token, body).status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200, 401, 401, 401]


def test_an_answer_after_the_expiry_expires_the_request(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    """Still stored pending but its time is up: the answer is refused before any certificate
    check (a certificate that is not even one gets the expiry message), the request is
    stored expired, and the token is used up."""
    app, code = enrolled
    browser, request_id = start_login(server, code)
    table = ApprovalRequest.__table__  # type: ignore[attr-defined]
    with server.env.engine.begin() as connection:
        connection.execute(
            update(table)
            .where(table.c.public_id == request_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    path = f"/api/v1/app/requests/{request_id}"
    token = app.token("POST", path)
    body = json.dumps(
        {
            "decision": "approve",
            "certificate": base64.b64encode(b"not a certificate").decode(),
            "signature": base64.b64encode(b"x").decode(),
        }
    )
    late = post(app, path, token, body)
    assert late.status_code == 409 and late.json()["detail"] == "the request is already expired"
    assert post(app, path, token, body).status_code == 401
    assert browser.get(f"/api/v1/auth/app/{request_id}").json()["state"] == "expired"
