"""CRLs, checked with ``openssl crl`` and ``openssl verify -crl_check``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
from asn1crypto import crl as asn1_crl

from keys.issuance import Purpose
from tests.conftest import RunningServer, issue_citizen


def _fetch(server: RunningServer, tmp_path: Path, name: str) -> Path:
    response = httpx.get(f"{server.url}/crl/{name}.crl")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pkix-crl"
    path = tmp_path / f"{name}.crl"
    path.write_bytes(response.content)
    return path


def _number(path: Path) -> int:
    return int(asn1_crl.CertificateList.load(path.read_bytes()).crl_number_value.native)


def test_revoked_serial_is_listed_and_crl_number_increases(
    server: RunningServer, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    before = _number(_fetch(server, tmp_path, "citizen-ca"))
    citizen = issue_citizen(server.env, Purpose.SIGNING)
    server.env.run_eid("cert", "revoke", citizen.record.serial, "--reason", "superseded")

    path = _fetch(server, tmp_path, "citizen-ca")
    out = subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            str(path),
            "-CAfile",
            str(pem_files["citizen-ca"]),
            "-noout",
            "-text",
        ],
        capture_output=True,
        text=True,
    )
    assert "verify OK" in out.stderr + out.stdout
    assert citizen.record.serial.upper() in out.stdout.replace(":", "")
    assert "Superseded" in out.stdout
    assert _number(path) > before


def test_openssl_verify_with_crl_check(
    server: RunningServer, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    good = issue_citizen(server.env)
    bad = issue_citizen(server.env)
    server.env.run_eid("cert", "revoke", bad.record.serial)
    crl_pem = tmp_path / "citizen.crl.pem"
    subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            str(_fetch(server, tmp_path, "citizen-ca")),
            "-out",
            str(crl_pem),
        ],
        check=True,
    )
    root_crl = tmp_path / "root.crl.pem"
    subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            str(_fetch(server, tmp_path, "root")),
            "-out",
            str(root_crl),
        ],
        check=True,
    )
    for citizen, expected in ((good, "OK"), (bad, "certificate revoked")):
        cert = tmp_path / "c.pem"
        cert.write_bytes(citizen.pem)
        out = subprocess.run(
            [
                "openssl",
                "verify",
                "-crl_check_all",
                "-CAfile",
                str(pem_files["root"]),
                "-untrusted",
                str(pem_files["citizen-ca"]),
                "-CRLfile",
                str(crl_pem),
                "-CRLfile",
                str(root_crl),
                str(cert),
            ],
            capture_output=True,
            text=True,
        )
        assert expected in out.stdout + out.stderr


def test_root_crl_is_signed_by_root(
    server: RunningServer, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    path = _fetch(server, tmp_path, "root")
    out = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(path), "-CAfile", str(pem_files["root"]), "-noout"],
        capture_output=True,
        text=True,
    )
    assert "verify OK" in out.stderr + out.stdout


def test_unknown_crl_is_a_problem_document(server: RunningServer) -> None:
    response = httpx.get(f"{server.url}/crl/nope.crl")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404
