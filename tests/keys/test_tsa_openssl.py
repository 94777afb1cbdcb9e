"""The time-stamping authority, checked with ``openssl ts`` against a running server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from asn1crypto import tsp

from tests.conftest import RunningServer

QUERY = "application/timestamp-query"


def _query(tmp_path: Path, *args: str) -> tuple[Path, Path]:
    data = tmp_path / "data.txt"
    data.write_text("Kõik inimesed sünnivad vabadena.\n", encoding="utf-8")
    query = tmp_path / "query.tsq"
    subprocess.run(
        ["openssl", "ts", "-query", "-data", str(data), *args, "-out", str(query)],
        check=True,
        capture_output=True,
    )
    return data, query


def _post(server: RunningServer, body: bytes) -> httpx.Response:
    return httpx.post(server.url + "/tsa", content=body, headers={"content-type": QUERY})


@pytest.mark.parametrize("digest", ["-sha256", "-sha384", "-sha512"])
def test_openssl_verifies_token(
    server: RunningServer, pem_files: dict[str, Path], tmp_path: Path, digest: str
) -> None:
    data, query = _query(tmp_path, digest, "-cert")
    response = _post(server, query.read_bytes())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/timestamp-reply"
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(response.content)
    for source in (["-data", str(data)], ["-queryfile", str(query)]):
        out = subprocess.run(
            [
                "openssl",
                "ts",
                "-verify",
                *source,
                "-in",
                str(reply),
                "-CAfile",
                str(pem_files["root"]),
                "-untrusted",
                str(pem_files["tsa"]),
            ],
            capture_output=True,
            text=True,
        )
        assert "Verification: OK" in out.stdout, out.stderr


def test_nonce_policy_accuracy_and_unique_serials(server: RunningServer, tmp_path: Path) -> None:
    _data, query = _query(tmp_path, "-sha256", "-cert")
    request = tsp.TimeStampReq.load(query.read_bytes())
    infos = []
    for _ in range(3):
        token = tsp.TimeStampResp.load(_post(server, query.read_bytes()).content)["time_stamp_token"]
        signed_data = token["content"]
        assert len(signed_data["certificates"]) == 1  # certReq honoured
        infos.append(signed_data["encap_content_info"]["content"].parsed)
    assert all(info["nonce"].native == request["nonce"].native for info in infos)
    assert len({info["serial_number"].native for info in infos}) == 3
    assert infos[0]["accuracy"]["seconds"].native == 1
    assert infos[0]["policy"].dotted == "0.4.0.2023.1.1"  # ETSI best-practices policy


def test_without_cert_req_no_certificate_is_included(server: RunningServer, tmp_path: Path) -> None:
    _data, query = _query(tmp_path, "-sha256", "-no_nonce")
    token = tsp.TimeStampResp.load(_post(server, query.read_bytes()).content)["time_stamp_token"]
    assert not token["content"]["certificates"]


def _reply_text(tmp_path: Path, content: bytes) -> str:
    reply = tmp_path / "reply.tsr"
    reply.write_bytes(content)
    out = subprocess.run(
        ["openssl", "ts", "-reply", "-in", str(reply), "-text"], capture_output=True, text=True
    )
    return out.stdout


def test_unknown_algorithm_is_rejected_with_bad_alg(server: RunningServer, tmp_path: Path) -> None:
    _data, query = _query(tmp_path, "-sha1")
    response = _post(server, query.read_bytes())
    assert response.status_code == 200
    text = _reply_text(tmp_path, response.content)
    assert "Status: Rejected" in text
    assert "unrecognized or unsupported algorithm" in text


def test_foreign_policy_is_rejected(server: RunningServer, tmp_path: Path) -> None:
    _data, query = _query(tmp_path, "-sha256", "-tspolicy", "1.2.3.4")
    text = _reply_text(tmp_path, _post(server, query.read_bytes()).content)
    assert "Status: Rejected" in text
    assert "unaccepted policy" in text.lower() or "policy" in text.lower()


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"\x30\x03\x02\x01\x01", b"\x30\x82\xff\xff"],
    ids=["empty", "garbage", "missing-imprint", "truncated"],
)
def test_malformed_requests_get_a_rejection_not_a_500(
    server: RunningServer, tmp_path: Path, body: bytes
) -> None:
    response = _post(server, body)
    assert response.status_code == 400
    text = _reply_text(tmp_path, response.content)
    assert "Status: Rejected" in text
    assert "wrong format" in text


def test_oversized_request_is_refused(server: RunningServer, tmp_path: Path) -> None:
    response = _post(server, b"\x30" * 100_000)
    assert response.status_code == 413
    assert "Status: Rejected" in _reply_text(tmp_path, response.content)


def test_imprint_length_must_match_algorithm(server: RunningServer, tmp_path: Path) -> None:
    _data, query = _query(tmp_path, "-sha256")
    request = tsp.TimeStampReq.load(query.read_bytes())
    forged = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha512"}, "hashed_message": b"\x00" * 32},
            "nonce": request["nonce"].native,
        }
    )
    response = _post(server, forged.dump())
    assert response.status_code == 400
    assert "Status: Rejected" in _reply_text(tmp_path, response.content)
