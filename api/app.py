"""The FastAPI application: wiring only, no domain logic."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

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
    )
    problems.install(app)
    _install_middleware(app, settings)

    # Probes and the busiest routes first: FastAPI tries routes in order, a few
    # microseconds each (OCSP, the app's answers, login polling, the token endpoint).
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

    app.include_router(trust.router)
    app.include_router(app_routes.router)
    app.include_router(auth.router)
    app.include_router(oauth.router)
    app.include_router(oidc.router)
    app.include_router(enrolment.router)
    app.include_router(me.router)
    app.include_router(admin.router)
    app.include_router(registration.router)
    app.include_router(signing.router)
    app.include_router(envelopes.router)
    app.include_router(seals.router)
    app.include_router(qr_routes.router)
    app.include_router(verify_routes.router)
    app.include_router(page_routes.router)
    app.include_router(demo_routes.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static")

    return app


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
