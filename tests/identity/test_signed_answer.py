"""Approvals without a request token: the signature over the request's hash authenticates them.

``eid-app`` answers this way (docs/protocol.md, "Answer"). What must hold: only a key
certified to the request's citizen can complete it; a caller who has not shown such a
key cannot change the request at all (it stays pending, so a stranger who learned its
id cannot make it fail); once the signature verifies, a refusal (wrong kind of key,
revoked certificate) fails the request as an answer with a token does; a replay and a
concurrent second answer are refused by the one conditional update.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update

from identity.models import ApprovalRequest
from keys.models import utcnow
from tests.conftest import RunningServer
from tests.identity.protocol_client import ProtocolApp
from tests.identity.test_answer_transaction import _close_browsers, start_login  # noqa: F401 (autouse fixture)
from tests.identity.test_login_with_app import register


@pytest.fixture
def enrolled(server: RunningServer) -> tuple[ProtocolApp, str]:
    code, activation = register(server)
    app = ProtocolApp(server.url)
    app.enrol(activation)
    return app, code


def stored_state(server: RunningServer, request_id: str) -> str:
    table = ApprovalRequest.__table__  # type: ignore[attr-defined]
    with server.env.engine.connect() as connection:
        return str(
            connection.execute(select(table.c.state).where(table.c.public_id == request_id)).scalar_one()
        )


def test_an_approval_without_a_token_completes_the_login(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    app, code = enrolled
    browser, request_id = start_login(server, code)
    request = app.pending()[0]

    answered = app.answer(request, tokenless=True)
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"id": request_id, "state": "completed"}
    status = browser.get(f"/api/v1/auth/app/{request_id}").json()
    assert status["state"] == "completed" and status["identity"]["sub"] == f"EE{code}"

    replay = app.answer(request, tokenless=True)
    assert replay.status_code == 409 and replay.json()["detail"] == "the request is already completed"


def test_a_signature_that_does_not_verify_changes_nothing(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    app, code = enrolled
    _browser, request_id = start_login(server, code)
    request = app.pending()[0]

    forged = app.answer(request, key=ec.generate_private_key(ec.SECP256R1()), tokenless=True)
    assert forged.status_code == 409 and "does not verify" in forged.json()["detail"]
    assert forged.headers["content-type"].startswith("application/problem+json")
    assert stored_state(server, request_id) == "pending"
    assert app.answer(request, tokenless=True).json()["state"] == "completed"


def test_another_citizens_key_changes_nothing(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    app, code = enrolled
    stranger = ProtocolApp(server.url)
    stranger.enrol(register(server)[1])
    _browser, request_id = start_login(server, code)
    request = app.pending()[0]

    theirs = stranger.answer(request, tokenless=True)
    assert theirs.status_code == 409 and "does not belong to this citizen" in theirs.json()["detail"]
    not_ours = app.answer(request, certificate=b"not a certificate", tokenless=True)
    assert not_ours.status_code == 409 and "not one issued by our Citizen CA" in not_ours.json()["detail"]
    assert stored_state(server, request_id) == "pending"


def test_a_refusal_needs_a_token(enrolled: tuple[ProtocolApp, str], server: RunningServer) -> None:
    app, code = enrolled
    _browser, request_id = start_login(server, code)
    path = f"/api/v1/app/requests/{request_id}"

    refused = app.call("POST", path, json={"decision": "refuse"}, tokenless=True)
    assert refused.status_code == 401 and "needs a request token" in refused.json()["detail"]
    missing = app.call("POST", path, json={"decision": "approve"}, tokenless=True)
    assert (
        missing.status_code == 409 and "needs the certificate and the signature" in missing.json()["detail"]
    )
    assert stored_state(server, request_id) == "pending"


def test_unknown_and_expired_requests_are_refused_without_a_write(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    app, code = enrolled
    _browser, request_id = start_login(server, code)
    request = app.pending()[0]
    unknown = app.answer({**request, "id": "ar-000000000000000000000000"}, tokenless=True)
    assert unknown.status_code == 404

    table = ApprovalRequest.__table__  # type: ignore[attr-defined]
    with server.env.engine.begin() as connection:
        connection.execute(
            update(table)
            .where(table.c.public_id == request_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    late = app.answer(request, tokenless=True)
    assert late.status_code == 409 and late.json()["detail"] == "the request is already expired"
    assert stored_state(server, request_id) == "pending"  # expired by time; only its owner's calls store it


def test_the_signing_key_cannot_log_in_and_the_request_fails(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    """The signature verifies with a key certified to this citizen: the caller is the
    citizen's app, so the wrong kind of key fails the request and the browser learns it."""
    app, code = enrolled
    browser, request_id = start_login(server, code)
    request = app.pending()[0]

    wrong = app.answer(request, key=app.sign_key, certificate=app.sign_certificate, tokenless=True)
    assert wrong.status_code == 409 and "needs the authentication key" in wrong.json()["detail"]
    status = browser.get(f"/api/v1/auth/app/{request_id}").json()
    assert status["state"] == "failed" and "authentication key" in status["reason"]


def test_a_revoked_certificate_fails_the_request(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    app, code = enrolled
    serial = format(x509.load_der_x509_certificate(app.auth_certificate).serial_number, "x")
    server.env.run_eid("cert", "revoke", serial)
    browser, request_id = start_login(server, code)
    request = app.pending()[0]

    revoked = app.answer(request, tokenless=True)
    assert revoked.status_code == 409 and "revoked" in revoked.json()["detail"]
    assert browser.get(f"/api/v1/auth/app/{request_id}").json()["state"] == "failed"


def test_one_approval_sent_four_times_at_once_completes_once(
    enrolled: tuple[ProtocolApp, str], server: RunningServer
) -> None:
    app, code = enrolled
    _browser, _request_id = start_login(server, code)
    request = app.pending()[0]
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def send() -> None:
        barrier.wait()
        statuses.append(app.answer(request, tokenless=True).status_code)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200, 409, 409, 409]
