"""End to end over HTTP: the app uploads a PDF, approves the sign request with the
signing key, and the service returns a B-LTA PDF that poppler's pdfsig accepts."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from api import signing_flow
from tests.conftest import RunningServer
from tests.identity.protocol_client import ProtocolApp
from tests.identity.test_login_with_app import fresh_code
from tests.signing.conftest import make_pdf
from tests.signing.witnesses import pdfsig


@pytest.fixture
def app(server: RunningServer) -> ProtocolApp:
    added = json.loads(
        server.env.run_eid(
            "citizen",
            "add",
            "--id-code",
            fresh_code(),
            "--given-name",
            "Mari-Liis",
            "--family-name",
            "Männik",
            "--json",
        ).stdout
    )
    citizen_app = ProtocolApp(server.url)
    citizen_app.enrol(added["activation_code"])
    return citizen_app


def _upload(app: ProtocolApp, body: bytes, **params: str) -> httpx.Response:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return app.call(
        "POST",
        "/api/v1/signing" + (f"?{query}" if query else ""),
        token=app.token("POST", "/api/v1/signing"),
        content=body,
        headers={"content-type": "application/pdf"},
    )


@pytest.mark.parametrize("level", ["B-B", "B-LTA"])
def test_sign_a_pdf(server: RunningServer, app: ProtocolApp, tmp_path: Path, nss_db: str, level: str) -> None:
    pdf = make_pdf(tmp_path / "in.pdf")
    started = _upload(app, pdf.read_bytes(), level=level, name="contract.pdf", reason="Agreed")
    assert started.status_code == 201, started.text
    session = started.json()
    request = next(r for r in app.pending() if r["kind"] == "sign")
    assert request["verification_code"] == session["verification_code"]
    assert "contract.pdf" in request["display_text"]
    assert app.answer(request).status_code == 200

    path = f"/api/v1/signing/{session['id']}"
    status = app.call("GET", path).json()
    assert status["state"] == "completed", status
    signed = app.call("GET", path + "/document")
    assert signed.status_code == 200 and signed.headers["content-type"] == "application/pdf"
    out = tmp_path / "signed.pdf"
    out.write_bytes(signed.content)
    report = pdfsig(nss_db, out)
    lines = report[0]
    assert "Signature Validation: Signature is Valid." in lines
    assert "Certificate Validation: Certificate is Trusted." in lines
    if level == "B-LTA":
        assert len(report) == 2  # the signature and the document time stamp
    else:
        assert "Total document signed" in lines
    # A single signer's upload became the signed document (no copy), under the fixed
    # name a retried finish looks for; it starts with the uploaded bytes.
    stored = server.env.data_dir / "documents" / signing_flow.signed_blob_id(session["id"])
    assert stored.read_bytes() == signed.content
    assert signed.content.startswith(pdf.read_bytes())


def test_refused_and_bad_documents(server: RunningServer, app: ProtocolApp, tmp_path: Path) -> None:
    truncated = make_pdf(tmp_path / "x.pdf").read_bytes()[:200]
    for body, fragment in ((b"not a pdf", "not a PDF"), (truncated, "truncated")):
        response = _upload(app, body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert fragment in response.json()["detail"]
    encrypted = _upload(app, make_pdf(tmp_path / "e.pdf", password="secret").read_bytes())
    assert encrypted.status_code == 422 and "encrypted" in encrypted.json()["detail"]

    started = _upload(app, make_pdf(tmp_path / "in.pdf").read_bytes()).json()
    request = next(r for r in app.pending() if r["kind"] == "sign")
    # The authentication key cannot sign.
    wrong = app.answer(request, key=app.auth_key, certificate=app.auth_certificate)
    assert wrong.status_code == 409 and "signing key" in wrong.json()["detail"]
    status = app.call("GET", f"/api/v1/signing/{started['id']}").json()
    assert status["state"] == "failed"
    assert app.call("GET", f"/api/v1/signing/{started['id']}/document").status_code == 404

    nobody = httpx.post(server.url + "/api/v1/signing", content=b"%PDF-1.7")
    assert nobody.status_code == 401


def test_documents_are_deleted_after_retention(
    server: RunningServer, app: ProtocolApp, tmp_path: Path
) -> None:
    started = _upload(app, make_pdf(tmp_path / "in.pdf").read_bytes(), level="B-B").json()
    app.answer(next(r for r in app.pending() if r["kind"] == "sign"))
    assert app.call("GET", f"/api/v1/signing/{started['id']}").json()["state"] == "completed"
    from sqlalchemy import text

    from tests.identity.oidc.conftest import database

    with database(server) as session:
        session.execute(
            text(
                "UPDATE signing_session SET delete_after = '2000-01-01 00:00:00.000000' WHERE public_id = :id"
            ),
            {"id": started["id"]},
        )
        session.commit()
    swept = json.loads(server.env.run_eid("documents", "sweep", "--json").stdout)
    assert swept["sessions_swept"] >= 1
    assert app.call("GET", f"/api/v1/signing/{started['id']}").json()["state"] == "deleted"
    assert app.call("GET", f"/api/v1/signing/{started['id']}/document").status_code == 404


def test_idempotency_key_gives_the_same_session(
    server: RunningServer, app: ProtocolApp, tmp_path: Path
) -> None:
    body = make_pdf(tmp_path / "in.pdf").read_bytes()
    key = {"content-type": "application/pdf", "idempotency-key": "7d5c0b7e-retry"}

    def upload(content: bytes, **params: str) -> httpx.Response:
        query = "&".join(f"{k}={v}" for k, v in {"level": "B-B", **params}.items())
        return app.call(
            "POST",
            f"/api/v1/signing?{query}",
            token=app.token("POST", "/api/v1/signing"),
            content=content,
            headers=key,
        )

    first, again = upload(body), upload(body)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["verification_code"] == first.json()["verification_code"]
    assert len([r for r in app.pending() if r["kind"] == "sign"]) == 1  # one approval, not two

    changed = upload(body, level="B-T")
    assert changed.status_code == 422 and "different request" in changed.json()["detail"]
