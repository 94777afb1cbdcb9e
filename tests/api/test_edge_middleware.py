"""The one edge middleware layer (``api.observability.EdgeMiddleware``): every kind of
answer, the app's own and the refusals it makes itself (413, 429, the last-resort 500),
gets the request id, the security headers, one access log line and its metric sample."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from api import logs, observability
from tests.api._inprocess import client_for
from tests.conftest import ServiceEnv

SMALL = 1024
# Two enrolment tries, then about one a day: the third is refused.
SETTINGS: dict[str, Any] = {
    "limits": {"body_bytes": SMALL, "document_bytes": 4 * SMALL},
    "rate_limits": {"enabled": True, "enrolment": {"per_minute": 0.001, "burst": 2}},
}


def _requests_total(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("eid_http_requests_total", labels) or 0.0


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 256):
        yield b" " * 256


def _assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers  # plain http


def test_every_kind_of_answer_gets_id_headers_log_line_and_metric(
    service_env: ServiceEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eid.access")
    caplog.handler.addFilter(logs.MaskPersonalCodes())
    # (request id, method, route template, status, how to ask). Refusals made before routing
    # (413 on a declared length, 429) are matched again from the path, which finds the
    # route's template too (the app's routes are one flat list: api/app.py ``_routes``).
    cases: list[tuple[str, str, str, int, dict[str, Any]]] = [
        ("edge-ok-000001", "GET", "/healthz", 200, {"url": "/healthz"}),
        ("edge-nf-000002", "GET", "unmatched", 404, {"url": "/no/such/page"}),
        ("edge-405-00003", "DELETE", "/healthz", 405, {"url": "/healthz"}),
        ("edge-static-04", "GET", "/static", 200, {"url": "/static/login.js"}),
        ("edge-docs-0005", "GET", "/docs", 200, {"url": "/docs"}),
        (
            "edge-413-decl6",
            "POST",
            "/api/v1/auth/app",
            413,
            {"url": "/api/v1/auth/app", "content": b"{" + b" " * SMALL + b"}"},
        ),
        (
            "edge-413-strm7",
            "POST",
            "/api/v1/auth/app",
            413,
            {
                "url": "/api/v1/auth/app",
                "content": _chunks(3 * SMALL),
                "headers": {"content-type": "application/json"},
            },
        ),
        ("edge-boom-0008", "GET", "/boom", 500, {"url": "/boom"}),
    ]
    enrolment = {"url": "/api/v1/enrolment", "json": {"activation_code": "WRONG-CODE"}}
    cases += [(f"edge-429-try-{n}", "POST", "/api/v1/enrolment", 400, enrolment) for n in (1, 2)]
    cases.append(("edge-429-try-3", "POST", "/api/v1/enrolment", 429, enrolment))
    before = {(m, r, s): _requests_total(m, r, s) for _, m, r, s, _ in cases}
    answers = {}
    with client_for(service_env, **SETTINGS) as client:
        app: Any = client.app

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("unexpected")

        for rid, method, _, _, how in cases:
            headers = {"X-Request-ID": rid} | how.pop("headers", {})
            answers[rid] = client.request(method, headers=headers, **how)
    records = {r.request_id: r for r in caplog.records if r.name == "eid.access"}  # type: ignore[attr-defined]
    lines = [r for r in caplog.records if r.name == "eid.access" and r.request_id in answers]  # type: ignore[attr-defined]
    assert len(lines) == len(cases)  # one line per request, no more
    for rid, method, route, status, _ in cases:
        response = answers[rid]
        assert response.status_code == status, (rid, response.text)
        assert response.headers["x-request-id"] == rid
        assert response.headers.get_list("x-request-id") == [rid]
        _assert_security_headers(response)
        record = records[rid]
        assert (record.method, record.route, record.status) == (method, route, status)  # type: ignore[attr-defined]
        assert record.path == response.request.url.path  # type: ignore[attr-defined]
    for (method, route, status), count in before.items():
        asked = sum(1 for _, m, r, s, _ in cases if (m, r, s) == (method, route, status))
        assert _requests_total(method, route, status) - count == asked, (method, route, status)
    assert answers["edge-boom-0008"].headers["content-type"] == "application/problem+json"
    assert answers["edge-413-strm7"].json()["type"].endswith("/body-too-large")
    assert answers["edge-429-try-3"].headers["retry-after"]
    # The docs page keeps its own policy (its inline script's hash), not the common one.
    assert "sha256-" in answers["edge-docs-0005"].headers["content-security-policy"]


def test_a_page_that_sets_its_own_header_keeps_it(service_env: ServiceEnv) -> None:
    with client_for(service_env) as client:
        app: Any = client.app

        @app.get("/strict")
        def strict() -> Any:
            from fastapi.responses import PlainTextResponse

            return PlainTextResponse("x", headers={"Content-Security-Policy": "default-src 'none'"})

        response = client.get("/strict")
    assert response.headers.get_list("content-security-policy") == ["default-src 'none'"]
    assert response.headers["x-frame-options"] == "DENY"


def test_hsts_on_every_answer_when_public_url_is_https(service_env: ServiceEnv) -> None:
    with client_for(service_env, public_url="https://eid.example", **SETTINGS) as client:
        answers = [
            client.get("/healthz"),
            client.post("/api/v1/auth/app", content=b"{" + b" " * SMALL + b"}"),
            client.get("/docs"),
        ]
    assert [a.headers["strict-transport-security"] for a in answers] == ["max-age=31536000"] * 3


def test_a_request_id_that_is_a_personal_code_is_masked_in_the_log(
    service_env: ServiceEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eid.access")
    caplog.handler.addFilter(logs.MaskPersonalCodes())
    code = "38001085718"
    with client_for(service_env) as client:
        response = client.get(f"/api/v1/admin/citizens/EE/{code}", headers={"X-Request-ID": code})
    assert response.headers["x-request-id"] == code
    record = next(r for r in caplog.records if r.name == "eid.access")
    assert record.request_id == logs.MASK  # type: ignore[attr-defined]
    assert record.path == "/api/v1/admin/citizens/EE/" + logs.MASK  # type: ignore[attr-defined]
    assert code not in caplog.text


def test_metric_series_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "_SERIES", {})
    monkeypatch.setattr(observability, "_MAX_SERIES", 3)
    children = [observability._series(f"M{n}", "/edge-test", 200) for n in range(6)]
    assert len(observability._SERIES) == 3
    # Past the bound a series is still counted, just looked up every time.
    assert children[5][0] is observability.REQUESTS.labels("M5", "/edge-test", "200")
    assert observability._series("M0", "/edge-test", 200) is children[0]


def test_fresh_request_ids_are_unique_and_a_forked_child_draws_its_own() -> None:
    ids = {observability._request_id(None) for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert observability._request_id(b"given-id-123") == "given-id-123"
    assert len(observability._request_id(b"bad id")) == 32  # not well formed: a fresh one
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then leave at once
        os.write(write, observability._request_id(None).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    parent = observability._request_id(None)
    assert len(child) == 32 and child[:16] != parent[:16]
