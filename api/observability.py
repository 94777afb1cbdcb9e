"""Prometheus metrics and the access log, from one ASGI middleware keyed on route templates.

The domain counters are read off the HTTP exchange (method, route template, status) so
the route modules stay free of instrumentation: a 2xx ``POST /api/v1/app/requests/{id}``
is an approval answered, a 2xx ``POST /tsa`` a time stamp, and a redirect back to a
relying party carrying ``code=`` a completed authorization. Signatures are the exception:
the request that finishes one looks like any status poll, so they are counted when the
citizen's "signature" activity row commits (a SQLAlchemy session event).

With several worker processes (``eid serve --workers N``) set ``PROMETHEUS_MULTIPROC_DIR``
to an empty directory per instance before start: prometheus_client then keeps the values
in files there and ``/metrics`` sums them over the workers.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import logs

log = logging.getLogger("eid.access")

REQUESTS = Counter("eid_http_requests", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "eid_http_request_duration_seconds",
    "Time from request to the end of the response.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LOGINS = Counter("eid_logins", "Completed authorizations: codes sent back to relying parties.")
APPROVALS = Counter("eid_approvals_answered", "Approval requests the citizen app answered.")
SIGNATURES = Counter("eid_signatures_completed", "Signing sessions finished with a signed PDF.")
VERIFICATIONS = Counter("eid_verifications", "Verifications answered.", ["kind"])
OCSP = Counter("eid_ocsp_responses", "OCSP responses sent.")
TSA = Counter("eid_tsa_responses", "Time-stamp responses sent.")
RATE_LIMITED = Counter("eid_rate_limited", "Requests refused by a rate limit.", ["rule"])

# (method, route template) -> the counter a successful answer increments.
_EVENTS: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/app/requests/{request_id}"): APPROVALS,
    ("POST", "/ocsp"): OCSP,
    ("GET", "/ocsp/{encoded}"): OCSP,
    ("POST", "/tsa"): TSA,
    ("POST", "/api/v1/verify"): VERIFICATIONS.labels("pdf"),
    ("POST", "/verify"): VERIFICATIONS.labels("pdf"),
    ("GET", "/api/v1/qr/{token}"): VERIFICATIONS.labels("qr"),
    ("POST", "/api/v1/verify/qr-image"): VERIFICATIONS.labels("qr"),
    ("GET", "/v/{token}"): VERIFICATIONS.labels("qr"),
    ("GET", "/V/{token}"): VERIFICATIONS.labels("qr"),
    ("POST", "/v/{token}"): VERIFICATIONS.labels("qr"),
    ("POST", "/V/{token}"): VERIFICATIONS.labels("qr"),
}
# Where the authorization endpoint's answer leaves for the relying party.
_AUTHORIZATION_ROUTES = {"/oauth/authorize", "/oauth/authorize/resume", "/consent"}
_CODE_IN_LOCATION = re.compile(rb"[?&]code=")
_GOOD_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def route_template(app: ASGIApp, scope: Scope, original: Scope) -> str:
    """The template the router matched (``/api/v1/signing/{session_id}``), never the raw
    path: raw paths would make one time series per session id. Mounts (``/static``) and
    wrong methods set no route in the scope, so those are matched again on ``original``
    (the scope as it came in: a mount rewrites ``root_path``)."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    for candidate in getattr(app, "routes", ()):
        match, _ = candidate.matches(original)
        if match is not Match.NONE:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


def _request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _GOOD_REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class AccessMiddleware:
    """Request id (taken from ``X-Request-ID`` when well formed, echoed back), metrics and
    one access log line per request."""

    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI, access_log: bool = True) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope["headers"])
        original = {k: scope[k] for k in ("type", "path", "method", "headers") if k in scope}
        original["root_path"] = scope.get("root_path", "")
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500
        location = b""
        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            self._record(scope, original, status, location, time.perf_counter() - started)

        async def send_with_id(message: Message) -> None:
            nonlocal status, location
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                location = next((v for k, v in headers if k.lower() == b"location"), b"")
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Before the last byte goes out: once a client has its answer, the metrics
                # (and the log) already show the request, whichever worker it asks next.
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record()
            logs.request_id.reset(token)

    def _record(self, scope: Scope, original: Scope, status: int, location: bytes, duration: float) -> None:
        method = scope["method"]
        route = route_template(self.fastapi_app.router, scope, original)
        REQUESTS.labels(method, route, str(status)).inc()
        LATENCY.labels(method, route).observe(duration)
        _count_event(method, route, status, location)
        if self.access_log:
            log.info(
                "%s %s %s",
                method,
                route,
                status,
                extra={
                    "method": method,
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(duration * 1000, 1),
                    "client": (scope.get("client") or ("-",))[0],
                },
            )


def _count_event(method: str, route: str, status: int, location: bytes) -> None:
    if 200 <= status < 300 and (counter := _EVENTS.get((method, route))) is not None:
        counter.inc()
    elif route in _AUTHORIZATION_ROUTES and status in (302, 303) and _CODE_IN_LOCATION.search(location):
        LOGINS.inc()


def _count_signatures() -> None:
    """Count "signature" activity rows when their transaction commits (not at flush: a
    rolled-back finish must not count)."""
    from identity.models import Activity

    if getattr(_count_signatures, "installed", False):
        return

    @event.listens_for(OrmSession, "after_flush")
    def _collect(session: OrmSession, _context: Any) -> None:
        added = sum(1 for obj in session.new if isinstance(obj, Activity) and obj.kind == "signature")
        if added:
            session.info["eid_signatures"] = session.info.get("eid_signatures", 0) + added

    @event.listens_for(OrmSession, "after_commit")
    def _commit(session: OrmSession) -> None:
        if added := session.info.pop("eid_signatures", 0):
            SIGNATURES.inc(added)

    @event.listens_for(OrmSession, "after_rollback")
    def _rollback(session: OrmSession) -> None:
        session.info.pop("eid_signatures", None)

    _count_signatures.installed = True  # type: ignore[attr-defined]


def install(app: FastAPI, *, access_log: bool) -> None:
    """Add ``/metrics`` and the access middleware to ``app``."""
    _count_signatures()

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(AccessMiddleware, fastapi_app=app, access_log=access_log)
