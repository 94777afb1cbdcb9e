"""The OCSP responder, checked with ``openssl ocsp`` against a running server."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import httpx
from asn1crypto import ocsp

from tests import openssl
from tests.conftest import IssuedCitizen, RunningServer, issue_citizen


def _openssl_ocsp(server: RunningServer, pem_files: dict[str, Path], cert: Path, *extra: str) -> str:
    return openssl.ocsp(server.url, pem_files, cert, *extra)


def _write(tmp_path: Path, citizen: IssuedCitizen, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(citizen.pem)
    return path


def test_good_then_revoked_after_eid_cert_revoke(
    server: RunningServer, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    citizen = issue_citizen(server.env)
    cert = _write(tmp_path, citizen, "citizen.pem")

    out = _openssl_ocsp(server, pem_files, cert)
    assert "Response verify OK" in out
    assert f"{cert}: good" in out

    server.env.run_eid("cert", "revoke", citizen.record.serial, "--reason", "key-compromise")
    out = _openssl_ocsp(server, pem_files, cert)
    assert "Response verify OK" in out
    assert f"{cert}: revoked" in out
    assert "keyCompromise" in out


def test_nonce_is_echoed_and_verified_by_openssl(
    server: RunningServer, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    cert = _write(tmp_path, issue_citizen(server.env), "c.pem")
    out = _openssl_ocsp(server, pem_files, cert)  # openssl sends a nonce by default
    assert "WARNING: no nonce in response" not in out
    assert "Nonce Verify error" not in out
    assert "Response verify OK" in out


def test_get_request_is_cacheable(server: RunningServer, pem_files: dict[str, Path], tmp_path: Path) -> None:
    cert = _write(tmp_path, issue_citizen(server.env), "c.pem")
    request = tmp_path / "req.der"
    subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(pem_files["citizen-ca"]),
            "-cert",
            str(cert),
            "-no_nonce",
            "-reqout",
            str(request),
        ],
        check=True,
        capture_output=True,
    )
    encoded = base64.b64encode(request.read_bytes()).decode()
    response = httpx.get(f"{server.url}/ocsp/{encoded}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ocsp-response"
    assert "max-age=" in response.headers["cache-control"]
    assert "last-modified" in response.headers and "etag" in response.headers
    (tmp_path / "resp.der").write_bytes(response.content)
    out = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-respin",
            str(tmp_path / "resp.der"),
            "-issuer",
            str(pem_files["citizen-ca"]),
            "-cert",
            str(cert),
            "-CAfile",
            str(pem_files["root"]),
        ],
        capture_output=True,
        text=True,
    )
    assert "Response verify OK" in out.stdout + out.stderr
    assert f"{cert}: good" in out.stdout


def _status(content: bytes) -> str:
    return str(ocsp.OCSPResponse.load(content)["response_status"].native)


def test_garbage_truncated_and_oversized_get_malformed_request(
    server: RunningServer, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    cert = _write(tmp_path, issue_citizen(server.env), "c.pem")
    request = tmp_path / "req.der"
    subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(pem_files["citizen-ca"]),
            "-cert",
            str(cert),
            "-reqout",
            str(request),
        ],
        check=True,
        capture_output=True,
    )
    headers = {"content-type": "application/ocsp-request"}
    bodies = [
        b"",
        b"garbage",
        request.read_bytes()[:-3],
        request.read_bytes() + b"\x00",
        b"\x30" * 200_000,
    ]
    for body in bodies:
        response = httpx.post(server.url + "/ocsp", content=body, headers=headers)
        assert response.status_code == 400, body[:20]
        assert response.headers["content-type"] == "application/ocsp-response"
        assert _status(response.content) == "malformed_request"
    # Too long for a GET (4096 characters at most): the protocol's own error too, not a 422.
    for path in ["!!!notbase64", "AAAA", "A" * 4100]:
        response = httpx.get(f"{server.url}/ocsp/{path}")
        assert response.status_code == 400
        assert _status(response.content) == "malformed_request"


def test_other_issuer_is_unauthorized(server: RunningServer, pem_files: dict[str, Path]) -> None:
    # The TSA certificate is issued by the root, not the Citizen CA.
    out = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(pem_files["root"]),
            "-cert",
            str(pem_files["tsa"]),
            "-url",
            server.url + "/ocsp",
            "-CAfile",
            str(pem_files["root"]),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "unauthorized" in (out.stdout + out.stderr).lower()


def test_unknown_serial_is_unknown(server: RunningServer, pem_files: dict[str, Path]) -> None:
    out = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(pem_files["citizen-ca"]),
            "-serial",
            "0x1234567890",
            "-url",
            server.url + "/ocsp",
            "-CAfile",
            str(pem_files["root"]),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "0x1234567890: unknown" in out.stdout


def test_cached_answer_changes_at_once_on_revocation(
    server: RunningServer, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    citizen = issue_citizen(server.env)
    cert = _write(tmp_path, citizen, "c.pem")
    request = tmp_path / "req.der"
    subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(pem_files["citizen-ca"]),
            "-cert",
            str(cert),
            "-no_nonce",
            "-reqout",
            str(request),
        ],
        check=True,
        capture_output=True,
    )
    headers = {"content-type": "application/ocsp-request"}

    def status() -> str:
        response = httpx.post(server.url + "/ocsp", content=request.read_bytes(), headers=headers)
        single = ocsp.OCSPResponse.load(response.content).basic_ocsp_response["tbs_response_data"][
            "responses"
        ][0]
        return str(single["cert_status"].name)

    assert status() == "good"
    assert status() == "good"  # now served from the cache
    server.env.run_eid("cert", "revoke", citizen.record.serial)
    assert status() == "revoked"


def test_responses_are_signed_by_the_delegated_responder(
    server: RunningServer, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    cert = _write(tmp_path, issue_citizen(server.env), "c.pem")
    out = _openssl_ocsp(server, pem_files, cert, "-resp_text")
    assert "OCSP Signing" in out
    assert "OCSP No Check" in out
