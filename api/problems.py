"""RFC 9457 problem details: the one place domain errors become HTTP answers."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from keys.errors import ServiceError

PROBLEM_BASE = "https://eid.example/problems/"
MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("eid.api")


def problem(
    status: int, title: str, detail: str | None = None, *, slug: str | None = None, **extra: object
) -> JSONResponse:
    body: dict[str, object] = {
        "type": PROBLEM_BASE + slug if slug else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        if exc.status >= 500:
            log.error("service error: %s", exc, exc_info=exc)
        detail = str(exc) if exc.public else None
        return problem(exc.status, exc.title, detail, slug=exc.slug)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, _reason(exc.status_code), str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": list(error.get("loc", ())), "message": error.get("msg", "")}
            for error in exc.errors()
        ]
        return problem(
            422,
            "Invalid request",
            "the request failed validation",
            slug="validation",
            errors=errors,
        )


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
