"""Institutional e-seals through the API: a relying party seals a PDF, no person approving."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.api.test_admin_api import _client, _token
from tests.conftest import RunningServer
from tests.signing.conftest import make_pdf
from tests.signing.test_stamp import qr_codes
from tests.signing.witnesses import pdfsig


@pytest.fixture(scope="module")
def sealer(server: RunningServer) -> dict[str, str]:
    client_id, secret = _client(server, "seal")
    added = json.loads(
        server.env.run_eid(
            "seal", "add", "--client", client_id, "--organisation", "Rahvastikuregister",
            "--org-id", "NTREE-70000310", "--json",
        ).stdout
    )  # fmt: skip
    assert added["identifier"] == "NTREE-70000310" and added["client"] == client_id
    token = _token(server, client_id, secret, scope="seal").json()["access_token"]
    return {"Authorization": f"Bearer {token}", "serial": added["serial"]}


def _seal(
    server: RunningServer, sealer: dict[str, str], body: bytes, key: str | None = None, **params: str
) -> httpx.Response:
    headers = {"Authorization": sealer["Authorization"], "Content-Type": "application/pdf"}
    if key:
        headers["Idempotency-Key"] = key
    return httpx.post(
        server.url + "/api/v1/seals",
        params={"name": "residence.pdf", "title": "Certificate of residence", **params},
        content=body,
        headers=headers,
        timeout=60,
    )


def test_seal_a_pdf(server: RunningServer, sealer: dict[str, str], tmp_path: Path, nss_db: str) -> None:
    sealed = _seal(server, sealer, make_pdf(tmp_path / "residence.pdf").read_bytes())
    assert sealed.status_code == 201, sealed.text
    body = sealed.json()
    assert body["state"] == "completed" and len(body["document_id"]) == 32
    auth = {"Authorization": sealer["Authorization"]}
    pdf = httpx.get(server.url + body["document_url"], headers=auth)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    out = tmp_path / "sealed.pdf"
    out.write_bytes(pdf.content)

    report = pdfsig(nss_db, out)
    assert len(report) == 2  # the seal and the document time stamp (B-LTA)
    assert "Signature Validation: Signature is Valid." in report[0]
    assert "Certificate Validation: Certificate is Trusted." in report[0]
    assert any("Rahvastikuregister" in line and "NTREE-70000310" in line for line in report[0])
    assert "Total document signed" in report[1]

    # The QR code on the stamp leads to the verification page, which names the seal.
    [(url, _, _)] = qr_codes(out, 1, tmp_path)
    assert url.startswith(server.url + "/v/")
    token = url.rsplit("/", 1)[1]
    claims = httpx.get(f"{server.url}/api/v1/qr/{token}").json()
    assert "Rahvastikuregister" in json.dumps(claims, ensure_ascii=False)
    assert body["document_id"] in json.dumps(claims)


def test_idempotent_retry_returns_the_same_file(
    server: RunningServer, sealer: dict[str, str], tmp_path: Path
) -> None:
    document = make_pdf(tmp_path / "a.pdf").read_bytes()
    first = _seal(server, sealer, document, key="order-4711", level="B-B")
    again = _seal(server, sealer, document, key="order-4711", level="B-B")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    auth = {"Authorization": sealer["Authorization"]}
    one = httpx.get(server.url + first.json()["document_url"], headers=auth).content
    two = httpx.get(server.url + again.json()["document_url"], headers=auth).content
    assert one == two  # the same signed bytes, not a second seal

    other = _seal(server, sealer, document + b"\n", key="order-4711", level="B-B")
    assert other.status_code == 422 and other.json()["type"].endswith("idempotency-key-reused")
    bad_key = _seal(server, sealer, document, key="has space", level="B-B")
    assert bad_key.status_code == 400


def test_seal_refusals(server: RunningServer, sealer: dict[str, str], tmp_path: Path) -> None:
    document = make_pdf(tmp_path / "b.pdf").read_bytes()
    for body in (b"%PDF-1.7 truncated", b"not a pdf at all"):
        refused = _seal(server, sealer, body)
        assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    # A client with the scope but no seal certificate.
    client_id, secret = _client(server, "seal")
    token = _token(server, client_id, secret, scope="seal").json()["access_token"]
    no_seal = _seal(server, {"Authorization": f"Bearer {token}"}, document)
    assert no_seal.status_code == 409 and "e-seal" in no_seal.json()["detail"]
    # No token, or a token without the scope.
    assert _seal(server, {"Authorization": "Bearer nope"}, document).status_code == 401
    # A revoked seal certificate: the seal is refused and nothing is stored.
    client_id, secret = _client(server, "seal")
    added = json.loads(
        server.env.run_eid(
            "seal",
            "add",
            "--client",
            client_id,
            "--organisation",
            "Maa-amet",
            "--org-id",
            "NTREE-70003098",
            "--json",
        ).stdout
    )
    server.env.run_eid("cert", "revoke", added["serial"], "--reason", "key-compromise")
    token = _token(server, client_id, secret, scope="seal").json()["access_token"]
    revoked = _seal(server, {"Authorization": f"Bearer {token}"}, document)
    assert revoked.status_code == 409 and revoked.json()["type"].endswith("no-seal-certificate")


def test_bad_organisation_identifier(server: RunningServer) -> None:
    client_id, _ = _client(server, "seal")
    result = server.env.run_eid(
        "seal", "add", "--client", client_id, "--organisation", "X", "--org-id", "70000310", check=False
    )
    assert result.returncode == 1 and "NTREE-70000310" in result.stderr and "Traceback" not in result.stderr
