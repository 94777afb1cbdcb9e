"""The FastAPI application: wiring only, no domain logic."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute

from keys.errors import ServiceError

from . import observability, problems
from .body_limit import BodyLimits
from .proxy import TrustedProxyMiddleware
from .ratelimit import RateLimiter
from .routes import admin, auth, enrolment, envelopes, me, oauth, oidc, registration, seals, signing, trust
from .routes import app as app_routes
from .routes import demo as demo_routes
from .routes import pages as page_routes
from .routes import qr as qr_routes
from .routes import verify as verify_routes
from .security_headers import SecurityHeaders
from .services import Services
from .settings import Settings


def serving_app() -> FastAPI:
    """The app as ``eid serve`` runs it (uvicorn's factory): ``create_app`` whose heap,
    once started, is left out of the garbage collector's full passes."""
    return create_app(freeze_heap=True)


def create_app(
    settings: Settings | None = None, services: Services | None = None, *, freeze_heap: bool = False
) -> FastAPI:
    """Build the app. ``services`` may be given by tests; otherwise opened at start-up.

    ``freeze_heap``: once the services are up, collect and then ``gc.freeze()`` what
    exists (the libraries, the trust services, the caches filled at start-up). Under
    load the collector's full pass over that heap stopped the process for 70-140 ms
    every few seconds (measured with ``gc.callbacks`` during ``bench/bench_oidc.py``),
    which was most of the token endpoint's p99; frozen objects are still freed by their
    reference counts, only never scanned for cycles again. For a serving process only:
    tests build many apps in one process, and the cycles of an app they drop would stay."""
    settings = settings or (services.settings if services else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or Services.start(settings)
        if freeze_heap:
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if owned:
                app.state.services.close()

    app = FastAPI(
        title="Citizen e-ID and e-signature service",
        version="0.1.0",
        summary="OpenID Connect provider, PAdES signing, verification, CA, OCSP, CRL and TSA.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry asks, on every request, whether an OpenTelemetry SDK
        # was configured (~12 µs). We ship none (metrics are Prometheus, at /metrics), so
        # the answer is always no: ask never.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    problems.install(app)
    _install_middleware(app, settings)

    # The busiest routes first (OCSP and TSA, the app's answers, login polling, the token
    # endpoint, the login pages): FastAPI tries routes in order, a few microseconds each,
    # so they come ahead of the probes and FastAPI's own documentation routes.
    app.router.routes[:0] = _routes(trust, app_routes, auth, oauth, oidc)

    @app.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz() -> dict[str, str]:  # async: no hop to the thread pool and back
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Database and key store are usable")
    def readyz(request: Request) -> JSONResponse:
        current: Services = request.app.state.services
        try:
            from sqlalchemy import text

            with current.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            current.keystore.key_info(current.pki.ocsp_responder.key_id)
        except ServiceError as exc:
            return problems.problem(503, "Not ready", str(exc) if exc.public else None)
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure as 503
            return problems.problem(503, "Not ready", type(exc).__name__)
        return JSONResponse({"status": "ready"})

    app.router.routes.extend(
        _routes(
            enrolment,
            me,
            admin,
            registration,
            signing,
            envelopes,
            seals,
            qr_routes,
            verify_routes,
            page_routes,
            demo_routes,
        )
    )
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static")

    return app


def _routes(*modules: ModuleType) -> list[BaseRoute]:
    """The routes of each module's ``router``, to go straight into the app's own list.

    ``app.include_router`` (FastAPI 0.16x) keeps each router as one entry that, on every
    request, walks its routes to match and again to dispatch, with bookkeeping in the scope
    at each step: about a sixth of an approval answer's CPU. Our routers carry only their
    paths' prefix and tags, which their routes already have, and nothing that an include
    adds (dependencies, lifespans, response classes), so the routes themselves go in."""
    found: list[BaseRoute] = []
    for module in modules:
        router: APIRouter = module.router
        assert not (router.dependencies or router.on_startup or router.on_shutdown), module.__name__
        found.extend(router.routes)
    return found


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """Outermost first: proxy headers (the real client and scheme), then one edge layer
    (``observability.EdgeMiddleware``) doing, in this order, the request id, access log
    and metrics (they see every answer, 413 and 429 included), the security headers (on
    every answer too), the rate limits (cheapest refusal before any body is read) and the
    body limits."""
    observability.install(
        app,
        access_log=settings.logging.access_log,
        security=SecurityHeaders(public_https=settings.public_url.startswith("https://")),
        body_limits=BodyLimits(default=settings.limits.body_bytes, documents=settings.limits.document_bytes),
        rate_limiter=RateLimiter(settings.rate_limits) if settings.rate_limits.enabled else None,
    )
    if settings.proxy.networks:
        app.add_middleware(TrustedProxyMiddleware, trusted=settings.proxy.networks)
