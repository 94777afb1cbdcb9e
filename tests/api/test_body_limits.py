"""Request body limits on every route: by Content-Length, and by counting streamed bytes
(chunked, no length declared); the document routes take the larger document limit."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from api.body_limit import MULTIPART_SLACK, limit_for
from tests.api._inprocess import client_for
from tests.conftest import RunningServer, ServiceEnv

SMALL = 2048
DOCUMENTS = 64 * 1024
LIMITS = {"limits": {"body_bytes": SMALL, "document_bytes": DOCUMENTS}}


def _chunks(total: int, size: int = 512) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


def _assert_413(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 413 and body["type"].endswith("/body-too-large")
    assert str(limit) in body["detail"]


@pytest.mark.parametrize(
    ("path", "documents"),
    [
        ("/api/v1/signing", True),
        ("/api/v1/verify", True),
        ("/api/v1/verify/qr-image", True),
        ("/verify", True),
        ("/v/ABC", True),
        ("/api/v1/envelopes", True),
        ("/api/v1/seals", True),
        ("/api/v1/auth/app", False),
        ("/oauth/token", False),
        ("/ocsp", False),
        ("/verifyx", False),
    ],
)
def test_limit_table(path: str, documents: bool) -> None:
    assert limit_for(path, default=1, documents=2) == (2 if documents else 1)


def test_declared_length_over_the_limit(service_env: ServiceEnv) -> None:
    with client_for(service_env, **LIMITS) as client:
        big = client.post("/api/v1/auth/app", content=b"{" + b" " * SMALL + b"}")
        form = client.post("/oauth/token", data={"grant_type": "x" * SMALL})
        fits = client.post("/api/v1/auth/app", json={"personal_code": "38001085718"})
    _assert_413(big, SMALL)
    _assert_413(form, SMALL)
    assert fits.status_code != 413
    assert big.headers["x-content-type-options"] == "nosniff" and big.headers["x-request-id"]


def test_streamed_body_is_counted(service_env: ServiceEnv) -> None:
    with client_for(service_env, **LIMITS) as client:
        streamed = client.post(
            "/api/v1/auth/app", content=_chunks(SMALL * 3), headers={"content-type": "application/json"}
        )
        small_stream = client.post(
            "/api/v1/auth/app",
            content=iter([b'{"personal_code":', b' "38001085718"}']),
            headers={"content-type": "application/json"},
        )
    _assert_413(streamed, SMALL)
    assert small_stream.status_code != 413


def test_document_routes_take_the_document_limit(service_env: ServiceEnv) -> None:
    with client_for(service_env, **LIMITS) as client:
        # Over the general limit, under the document one: the route answers (401: no app token).
        upload = client.post("/api/v1/signing", content=b"%PDF" + b"0" * (SMALL * 4))
        too_big = client.post("/api/v1/signing", content=b"%PDF" + b"0" * (DOCUMENTS + MULTIPART_SLACK))
    assert upload.status_code == 401, upload.text
    _assert_413(too_big, DOCUMENTS + MULTIPART_SLACK)


def test_chunked_upload_to_a_real_server(server: RunningServer) -> None:
    """Through uvicorn: a chunked body with no length, past the 1 MiB default, gets 413
    before the whole body is sent."""
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/auth/app HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"a" * 65536
        answer = b""
        try:
            for _ in range(64):  # up to 4 MiB; the server answers after about 1 MiB
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(30)
        try:
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer
