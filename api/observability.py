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

import itertools
import logging
import os
import re
import time
from typing import TYPE_CHECKING, Any

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

from . import body_limit, logs
from .body_limit import BodyLimits, BodyTooLarge
from .problems import problem
from .security_headers import SecurityHeaders, is_docs, serve_docs, with_headers

if TYPE_CHECKING:
    from .ratelimit import RateLimiter

log = logging.getLogger("eid.access")
api_log = logging.getLogger("eid.api")

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


_THIS_FILE = __file__
# (method, route template, status) -> the children of REQUESTS and LATENCY: ``labels()``
# takes a lock and builds a key on every call. Bounded: the method comes from the client.
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_MAX_SERIES = 4096


def route_template(app: ASGIApp, scope: Scope, *, path: str, root_path: str) -> str:
    """The template the router matched (``/api/v1/signing/{session_id}``), never the raw
    path: raw paths would make one time series per session id. Mounts (``/static``) and
    wrong methods set no route in the scope, so those are matched again on the scope as it
    came in (``path`` and ``root_path`` as they were: a mount rewrites ``root_path``)."""
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return template
    original = {k: scope[k] for k in ("type", "method", "headers") if k in scope}
    original |= {"path": path, "root_path": root_path}
    for candidate in getattr(app, "routes", ()):
        match, _ = candidate.matches(original)
        if match is not Match.NONE:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


class _RequestIds:
    """Fresh request ids: a random prefix per process and a counter, 32 hex digits.

    They only need to be unique, not unguessable, and ``os.urandom`` per request cost
    ~20 us here (a system call), a fortieth of an approval answer. A forked child draws a
    new prefix, so two processes never count from the same one."""

    def __init__(self) -> None:
        self._reseed()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFFFFFF:016x}"


_fresh_request_id = _RequestIds()


def _request_id(given: bytes | None) -> str:
    """``X-Request-ID`` as given when well formed, else a fresh one."""
    if given is not None:
        text = given.decode("latin-1")
        if _GOOD_REQUEST_ID.fullmatch(text):
            return text
    return _fresh_request_id()


def _series(method: str, route: str, status: int) -> tuple[Any, Any]:
    key = (method, route, status)
    found = _SERIES.get(key)
    if found is None:
        found = REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)
        if len(_SERIES) < _MAX_SERIES:
            _SERIES[key] = found
    return found


class EdgeMiddleware:
    """What the app does around every HTTP request, in one middleware layer rather than
    four (each layer is another call per request and another ``send`` wrapper per message,
    and the headers were copied once per layer). In this order, as separate middlewares
    would nest:

    1. the request id (``X-Request-ID`` when well formed, else a fresh one; echoed back),
       the metrics and one access log line: they see every answer, 413 and 429 included;
    2. the security headers on every answer (``security_headers.py``), and an unhandled
       error answered as problem JSON with them and the request id (Starlette's own
       last-resort 500 comes from outside every middleware, with neither);
    3. the rate limits when enabled (``ratelimit.py``): the cheapest refusal, before any
       body is read;
    4. the body limits (``body_limit.py``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        fastapi_app: FastAPI,
        security: SecurityHeaders,
        body_limits: BodyLimits,
        rate_limiter: RateLimiter | None = None,
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.security = security
        self.body_limits = body_limits
        self.rate_limiter = rate_limiter
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given_id = declared = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if given_id is None:
                    given_id = value
            elif name == b"content-length" and declared is None:
                declared = value
        rid = _request_id(given_id)
        rid_header = (b"x-request-id", rid.encode("latin-1"))
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        limit = self.body_limits.for_path(path)
        # None on the docs pages: ``serve_docs`` adds their own policy.
        security = None if is_docs(path) else self.security.for_scope(scope)
        token = logs.request_id.set(rid)
        started_at = time.perf_counter()
        status = 500
        response_headers: list[tuple[bytes, bytes]] = []
        started = recorded = exceeded = False
        received = 0

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                duration = time.perf_counter() - started_at
                self._record(scope, path, root_path, status, response_headers, duration)

        async def edge_send(message: Message) -> None:
            nonlocal status, response_headers, started
            if exceeded:
                # Whatever the route made of the cut-off body (FastAPI turns a failed read
                # into a 400) is replaced by the 413.
                return
            kind = message["type"]
            if kind == "http.response.start":
                started = True
                status = int(message["status"])
                response_headers = list(message.get("headers", ()))
                headers = response_headers if security is None else with_headers(response_headers, security)
                message = {**message, "headers": [*headers, rid_header]}
            elif kind == "http.response.body" and not message.get("more_body", False):
                # Before the last byte goes out: once a client has its answer, the metrics
                # (and the log) already show the request, whichever worker it asks next.
                record()
            await send(message)

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        try:
            try:
                if self.rate_limiter is not None and (refused := self.rate_limiter.refusal(scope)):
                    for message in refused:
                        await edge_send(message)
                elif declared is not None and declared.isdigit() and int(declared) > limit:
                    for message in body_limit.refusal(limit):
                        await edge_send(message)
                elif security is None:
                    common = self.security.common_for(scope)
                    await serve_docs(self.app, scope, counting_receive, edge_send, common)
                else:
                    await self.app(scope, counting_receive, edge_send)
            except BodyTooLarge:
                pass
            except Exception:
                if exceeded:
                    pass
                elif started:
                    raise
                else:
                    api_log.exception("unhandled error")
                    security = self.security.for_scope(scope)
                    await problem(500, "Internal Server Error")(scope, receive, edge_send)
            if exceeded and not started:
                exceeded = False  # the 413 is the answer now: let it through
                for message in body_limit.refusal(limit):
                    await edge_send(message)
        finally:
            record()
            logs.request_id.reset(token)

    def _record(
        self,
        scope: Scope,
        path: str,
        root_path: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
        duration: float,
    ) -> None:
        method = scope["method"]
        route = route_template(self.fastapi_app.router, scope, path=path, root_path=root_path)
        requests, latency = _series(method, route, status)
        requests.inc()
        latency.observe(duration)
        _count_event(method, route, status, headers)
        if self.access_log and log.isEnabledFor(logging.INFO):
            # ``log.info`` would first walk the stack for the caller's file and line, which
            # no log line shows: the record is made directly, and handled the same way.
            extra = {
                "method": method,
                "route": route,
                "path": scope["path"],
                "status": status,
                "duration_ms": round(duration * 1000, 1),
                "client": (scope.get("client") or ("-",))[0],
            }
            args = (method, route, status)
            log.handle(
                log.makeRecord(log.name, logging.INFO, _THIS_FILE, 0, "%s %s %s", args, None, extra=extra)
            )


def _count_event(method: str, route: str, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    if 200 <= status < 300:
        if (counter := _EVENTS.get((method, route))) is not None:
            counter.inc()
    elif status in (302, 303) and route in _AUTHORIZATION_ROUTES:
        location = next((value for name, value in headers if name.lower() == b"location"), b"")
        if _CODE_IN_LOCATION.search(location):
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


def install(
    app: FastAPI,
    *,
    access_log: bool,
    security: SecurityHeaders,
    body_limits: BodyLimits,
    rate_limiter: RateLimiter | None,
) -> None:
    """Add ``/metrics`` and the edge middleware to ``app``."""
    _count_signatures()

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(
        EdgeMiddleware,
        fastapi_app=app,
        security=security,
        body_limits=body_limits,
        rate_limiter=rate_limiter,
        access_log=access_log,
    )
