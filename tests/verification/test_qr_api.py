"""The QR endpoints against a real ``eid serve``: page, JSON, status, revocation, photo
upload, and the offline check with nothing but the published JWKS and pycose.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import qrcode
import zxingcpp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from PIL import Image

from keys.profiles import OrganisationSubject
from keys.seals import issue_seal_certificate
from signing import Level, StampSpec, async_sign_with_keystore
from tests.conftest import RunningServer
from tests.signing.conftest import Trust, make_pdf, run
from tests.signing.conftest import trust as trust  # noqa: F401 - a fixture, used by name
from tests.verification.test_qr_token import NAME_60, ORG_80, TITLE_120, Sealer
from verification import DocumentKind, load_qr_keys, qr_url, record_document
from verification.qr import decode_token

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def sealer(server: RunningServer) -> Iterator[Sealer]:
    session, keystore, pki = server.env.open()
    try:
        yield Sealer(session=session, keystore=keystore, pki=pki, keys=load_qr_keys(session))
    finally:
        session.rollback()
        session.close()
        keystore.close()


def _issue(
    sealer: Sealer,
    server: RunningServer,
    original: bytes,
    *,
    kind: DocumentKind = DocumentKind.SIGNATURE,
    **texts: str,
) -> tuple[str, str]:
    """Record a document (committed, as the signing flow does) and return (url, document id)."""
    document_id = os.urandom(16)
    fields: dict[str, str] = {"display_name": "Mari-Liis Männik", **texts}
    now = datetime.now(UTC)
    record_document(
        sealer.session,
        document_id=document_id,
        kind=kind,
        document=original,
        issued_at=now,
        **fields,  # type: ignore[arg-type]
    )
    sealer.session.commit()
    token = sealer.token(
        public_url=server.url,
        kind=kind,
        document_id=document_id,
        document_sha256=hashlib.sha256(original).digest(),
        issued_at=now,
        **fields,
    )
    return qr_url(server.url, token), document_id.hex()


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _png(text: str, *, box_size: int = 4) -> bytes:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box_size)
    code.add_data(text)
    buffer = io.BytesIO()
    code.make_image().save(buffer, format="PNG")
    return buffer.getvalue()


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    return body


# The page and its JSON twin.


def test_page_and_json_for_a_signature(server: RunningServer, sealer: Sealer) -> None:
    url, document_id = _issue(sealer, server, b"%PDF-1.7 original")
    page = httpx.get(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Signed document" in page.text and "Mari-Liis Männik" in page.text and "Valid." in page.text
    assert "Compare the paper with this page" in page.text
    assert 'enctype="multipart/form-data"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    body = httpx.get(f"{server.url}/api/v1/qr/{_token(url)}").json()
    assert body["verified"] is True
    assert body["claims"]["type"] == "signature" and body["claims"]["document_id"] == document_id
    assert body["claims"]["document_sha256"] == hashlib.sha256(b"%PDF-1.7 original").hexdigest()
    assert body["status"]["state"] == "valid"
    assert httpx.get(url.replace("/v/", "/V/")).status_code == 200  # scanners that upper-case


def test_seal_page_shows_the_full_texts_from_the_status_table(server: RunningServer, sealer: Sealer) -> None:
    url, _ = _issue(
        sealer,
        server,
        b"%PDF sealed",
        kind=DocumentKind.SEAL,
        display_name=NAME_60,
        organisation=ORG_80,
        title=TITLE_120,
    )
    body = httpx.get(f"{server.url}/api/v1/qr/{_token(url)}").json()
    assert body["claims"]["title"].endswith("…")  # shortened in the token to fit the QR code
    assert (body["status"]["title"], body["status"]["organisation"]) == (TITLE_120, ORG_80)
    page = httpx.get(url).text
    assert "Sealed document" in page and TITLE_120 in page and ORG_80 in page


def test_genuine_token_without_a_record_is_unknown(server: RunningServer, sealer: Sealer) -> None:
    token = sealer.token(public_url=server.url)  # sealed by us, never recorded
    body = httpx.get(f"{server.url}/api/v1/qr/{token}").json()
    assert body["verified"] is True and body["status"]["state"] == "unknown"
    page = httpx.get(qr_url(server.url, token)).text
    assert "Unknown document" in page and "Valid." not in page
    checked = _check(qr_url(server.url, token), b"%PDF anything")
    assert "cannot be compared" in checked and "The PDF matches" not in checked


def test_revocation_through_the_cli_shows_everywhere(server: RunningServer, sealer: Sealer) -> None:
    url, document_id = _issue(
        sealer, server, b"%PDF to revoke", kind=DocumentKind.SEAL, organisation="Org", title="T"
    )
    shown = server.env.run_eid("qr", "show", document_id, "--json")
    assert json.loads(shown.stdout)["state"] == "valid"
    done = server.env.run_eid("qr", "revoke", document_id, "--reason", "issued in error", "--json")
    assert json.loads(done.stdout)["state"] == "revoked"
    status = httpx.get(f"{server.url}/api/v1/qr/status/{document_id}").json()
    assert status["state"] == "revoked" and status["revocation_reason"] == "issued in error"
    assert status["revoked_at"]
    assert httpx.get(f"{server.url}/api/v1/qr/{_token(url)}").json()["status"]["state"] == "revoked"
    page = httpx.get(url).text
    assert "Revoked" in page and "issued in error" in page and "Valid." not in page
    again = server.env.run_eid("qr", "revoke", document_id, "--reason", "twice", check=False)
    assert again.returncode == 1 and again.stderr.startswith("error: ") and "Traceback" not in again.stderr


def test_cli_errors_are_one_line(server: RunningServer) -> None:
    for args in (
        ["qr", "show", "00" * 16],
        ["qr", "show", "nonsense"],
        ["qr", "revoke", "00" * 16, "--reason", "x"],
    ):
        result = server.env.run_eid(*args, check=False)
        assert result.returncode == 1 and result.stderr.startswith("error: "), result.stderr
    assert server.env.run_eid("qr", "revoke", "00" * 16, check=False).returncode == 2  # --reason missing


def test_status_of_unknown_and_bad_ids(server: RunningServer) -> None:
    _problem(httpx.get(f"{server.url}/api/v1/qr/status/{'00' * 16}"), 404)
    _problem(httpx.get(f"{server.url}/api/v1/qr/status/not-an-id"), 400)


# Bad tokens: a readable page for people, problem JSON for programs, never a 500.


@pytest.mark.parametrize(
    ("token", "status"),
    [
        ("abc", 400),
        ("0", 400),
        ("9" * 5000, 400),
        ("%00", 400),
        ("１２３", 400),
        ("12345678901234567890", 400),
    ],
)
def test_garbage_tokens_get_4xx(server: RunningServer, token: str, status: int) -> None:
    page = httpx.get(f"{server.url}/v/{token}")
    assert page.status_code == status and "could not be verified" in page.text
    assert page.headers["content-type"].startswith("text/html")
    _problem(httpx.get(f"{server.url}/api/v1/qr/{token}"), status)


def test_tampered_token_gets_422(server: RunningServer, sealer: Sealer) -> None:
    url, _ = _issue(sealer, server, b"%PDF tamper")
    token = _token(url)
    tampered = token[:-5] + ("00000" if token[-5:] != "00000" else "11111")
    body = _problem(httpx.get(f"{server.url}/api/v1/qr/{tampered}"), 422)
    assert body["type"] in (
        "https://eid.example/problems/qr-signature-invalid",
        "https://eid.example/problems/malformed-qr-token",
    )
    assert httpx.get(f"{server.url}/v/{tampered}").status_code in (400, 422)


# The PDF upload on the page: the signed file must start with the document that was signed.


def _check(url: str, data: bytes) -> str:
    response = httpx.post(url, files={"file": ("doc.pdf", data, "application/pdf")})
    assert response.status_code == 200
    return response.text


def test_upload_matching_and_other_pdfs(server: RunningServer, sealer: Sealer) -> None:
    original = b"%PDF-1.7\n" + secrets.token_bytes(3000) + b"\n%%EOF\n"
    url, _ = _issue(sealer, server, original)
    assert "The PDF matches" in _check(url, original + b"\n% incremental update with the signature\n%%EOF\n")
    assert "The PDF does not match" in _check(url, original[:-10] + b"X" + original[-9:] + b"more")
    assert "The PDF does not match" in _check(url, original[:100])
    assert "Choose a PDF" in httpx.post(url, data={"other": "x"}).text


# A photo or screenshot of the code.


def _image(server: RunningServer, data: bytes, name: str = "qr.png") -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/verify/qr-image", files={"file": (name, data, "image/png")}, timeout=60
    )


def test_qr_image_with_a_real_token(server: RunningServer, sealer: Sealer) -> None:
    url, document_id = _issue(sealer, server, b"%PDF photographed")
    response = _image(server, _png(url))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verified"] is True and body["claims"]["document_id"] == document_id
    # The same code photographed small and saved as JPEG still reads.
    picture = Image.open(io.BytesIO(_png(url, box_size=3))).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    assert _image(server, buffer.getvalue(), "qr.jpg").json()["claims"]["document_id"] == document_id


def test_qr_image_rejections(server: RunningServer) -> None:
    _problem(_image(server, b"this is not an image"), 422)
    blank = io.BytesIO()
    Image.new("L", (300, 300), 255).save(blank, format="PNG")
    assert "no QR code" in str(_problem(_image(server, blank.getvalue()), 422)["detail"])
    foreign = _problem(_image(server, _png("https://evil.example/v/123456789")), 422)
    assert "verification URL" in str(foreign["detail"])
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000), 1).save(bomb, format="PNG")  # 100 Mpx in a few kB
    assert len(bomb.getvalue()) < 100_000
    assert "pixels" in str(_problem(_image(server, bomb.getvalue()), 413)["detail"])
    _problem(_image(server, b"\x89PNG" + b"\x00" * (11 * 1024 * 1024)), 413)
    _problem(httpx.post(f"{server.url}/api/v1/verify/qr-image", data={"nofile": "x"}), 422)


def test_qr_image_with_a_tampered_token(server: RunningServer, sealer: Sealer) -> None:
    url, _ = _issue(sealer, server, b"%PDF tampered photo")
    cose = bytearray(decode_token(_token(url)))
    cose[-1] ^= 1
    from verification.qr import encode_token

    tampered = qr_url(server.url, encode_token(bytes(cose)))
    _problem(_image(server, _png(tampered)), 422)


# Offline: the JWKS and a generic COSE library, nothing of ours.


def test_offline_check_with_the_jwks_and_pycose(server: RunningServer, sealer: Sealer) -> None:
    from pycose.keys import EC2Key
    from pycose.messages import CoseMessage, Sign1Message

    url, document_id = _issue(sealer, server, b"%PDF offline")
    jwks = httpx.get(f"{server.url}/.well-known/eid-qr-keys.json").json()
    # The documented procedure: digits -> integer -> bytes, drop the 0x01 marker.
    number = int(url.rsplit("/", 1)[1])
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    assert raw[0] == 1
    message = CoseMessage.decode(raw[1:])
    assert isinstance(message, Sign1Message)
    kid = message.phdr[next(k for k in message.phdr if getattr(k, "identifier", None) == 4)]
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == base64.urlsafe_b64encode(kid).rstrip(b"=").decode()]
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("EC", "P-256", "ES256", "sig")

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    message.key = EC2Key(crv="P_256", x=unb64(jwk["x"]), y=unb64(jwk["y"]))
    assert message.verify_signature()
    import cbor2

    payload = cbor2.loads(message.payload)
    assert payload[2].hex() == document_id and payload[4] == "Mari-Liis Männik"
    # A flipped payload byte fails the same generic check.
    forged = CoseMessage.decode(raw[1:])
    forged.payload = forged.payload[:-1] + bytes([forged.payload[-1] ^ 1])
    forged.key = message.key
    assert not forged.verify_signature()
    # x5c: the seal certificate (whose hash is the kid), issued by our root.
    chain = [x509.load_der_x509_certificate(base64.b64decode(der)) for der in jwk["x5c"]]
    assert hashlib.sha256(base64.b64decode(jwk["x5c"][0])).digest()[:8] == kid
    chain[0].verify_directly_issued_by(chain[1])
    root_der = sealer.pki.root.certificate.dump()
    assert base64.b64decode(jwk["x5c"][1]) == root_der
    public = chain[0].public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.public_numbers().x.to_bytes(32, "big") == unb64(jwk["x"])


# The whole path: sign a real PDF with the QR code in its stamp, scan the page, follow it.


def test_signed_pdf_page_scan_follow_and_upload(
    server: RunningServer, sealer: Sealer, trust: Trust, tmp_path: Path
) -> None:

    source = make_pdf(tmp_path / "in.pdf")
    original = source.read_bytes()
    url, document_id = _issue(sealer, server, original, display_name="Population Register")
    # An organisation's e-seal: a key in the key store with an EN 319 412-3 certificate.
    record = issue_seal_certificate(
        sealer.session,
        sealer.keystore,
        sealer.pki,
        subject=OrganisationSubject(country="EE", name="Population Register", identifier="NTREE-70000310"),
        client_id=f"test-{secrets.token_hex(4)}",
    )
    assert record.der is not None and record.key_id is not None
    key_id = record.key_id
    workdir = tmp_path / "work"
    workdir.mkdir()
    signed = run(
        async_sign_with_keystore(
            source,
            tmp_path / "signed.pdf",
            workdir=workdir,
            keystore=sealer.keystore,
            key_id=key_id,
            certificate=record.der,
            chain=[sealer.pki.citizen_ca.certificate.dump(), sealer.pki.root.certificate.dump()],
            timestamper=None,
            validation=trust.revocation(),
            level=Level.B_B,
            stamp=StampSpec(signer_name="Population Register", qr_url=url),
        )
    )
    subprocess.run(
        ["pdftoppm", "-r", "150", "-png", "-singlefile", str(signed), str(tmp_path / "page")], check=True
    )
    (found,) = zxingcpp.read_barcodes(
        Image.open(tmp_path / "page.png"), formats=zxingcpp.BarcodeFormat.QRCode
    )
    assert found.text == url
    body = httpx.get(f"{server.url}/api/v1/qr/{_token(found.text)}").json()
    assert body["status"]["state"] == "valid" and body["claims"]["document_id"] == document_id
    assert "The PDF matches" in _check(found.text, signed.read_bytes())
    altered = bytearray(signed.read_bytes())
    altered[len(original) // 2] ^= 0x20
    assert "The PDF does not match" in _check(found.text, bytes(altered))
