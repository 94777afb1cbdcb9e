"""Public trust endpoints: OCSP, CRLs, the TSA and the CA certificates.

Errors here are the protocols' own: an OCSPResponse with an error status, a
TimeStampResp with a rejection. Never a 500, never an HTML page.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import timedelta
from email.utils import format_datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from keys import crl
from keys.models import as_utc, utcnow
from keys.ocsp import OcspAnswer, error_response
from keys.pki import URL_SLUGS
from keys.tsa import rejection

from ..deps import get_services
from ..problems import problem
from ..services import Services
from ._lean import documented, lean, parameter

router = APIRouter(tags=["trust services"])
T = TypeVar("T")

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
TSA_QUERY = "application/timestamp-query"
TSA_REPLY = "application/timestamp-reply"
ServicesDep = Annotated[Services, Depends(get_services)]


class BodyTooLarge(Exception):
    pass


async def _read_limited(request: Request, limit: int) -> bytes:
    """Read the body, stopping as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _services(request: Request) -> Services:
    """The app's services, taken directly: on the busiest public routes FastAPI's
    dependency resolution (``Depends(get_services)``) was a tenth of the CPU per answer."""
    services: Services = request.app.state.services
    return services


async def _answer(services: Services, respond: Callable[..., T], body: bytes) -> T:
    """Cheap answers inline on the event loop; blocking back ends in the thread pool."""
    if services.inline_trust:
        return respond(body, now=utcnow())
    return await run_in_threadpool(respond, body, now=utcnow())


def _ocsp_response(answer: OcspAnswer, *, cache: bool) -> Response:
    headers: dict[str, str] = {}
    status = 200 if answer.status != "malformed_request" else 400
    if cache and answer.cacheable and answer.next_update:
        max_age = max(0, int((answer.next_update - utcnow()).total_seconds()))
        headers = dict(answer.http_headers)
        headers["Cache-Control"] = f"max-age={max_age}, public, no-transform, must-revalidate"
    else:
        headers = {"Cache-Control": "no-store"}
    return Response(answer.der, status_code=status, media_type=OCSP_RESPONSE, headers=headers)


_OCSP_DOC = {
    "description": "A DER OCSPResponse; errors are OCSP response statuses.",
    "content": {OCSP_RESPONSE: {}},
}


@lean(
    router,
    "/ocsp",
    method="POST",
    summary="OCSP responder (RFC 6960), POST",
    response_class=Response,
    responses={200: _OCSP_DOC, 400: _OCSP_DOC},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {OCSP_REQUEST: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def ocsp_post(request: Request) -> Response:
    services = _services(request)
    try:
        body = await _read_limited(request, services.settings.limits.protocol_body_bytes)
    except BodyTooLarge:
        return _ocsp_response(error_response("malformed_request"), cache=False)
    answer = await _answer(services, services.ocsp.respond, body)
    return _ocsp_response(answer, cache=False)


MAX_GET_REQUEST = 4096
"""Characters of a base64 OCSP request in a GET path at most (a request is a few hundred)."""


@lean(
    router,
    "/ocsp/{encoded:path}",
    method="GET",
    summary="OCSP responder (RFC 6960 / RFC 5019), GET with a base64 request",
    response_class=Response,
    responses={200: _OCSP_DOC, 400: _OCSP_DOC},
    openapi_extra=documented(parameter("encoded", "path", "The DER OCSPRequest in base64 (URL-encoded)")),
)
async def ocsp_get(request: Request) -> Response:
    services = _services(request)
    encoded: str = request.path_params["encoded"]
    if len(encoded) > MAX_GET_REQUEST:
        return _ocsp_response(error_response("malformed_request"), cache=False)
    try:
        body = base64.b64decode(encoded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return _ocsp_response(error_response("malformed_request"), cache=False)
    answer = await _answer(services, services.ocsp.respond, body)
    return _ocsp_response(answer, cache=True)


_TSA_DOC = {
    "description": "A DER TimeStampResp; refusals are PKIStatus rejections.",
    "content": {TSA_REPLY: {}},
}


@lean(
    router,
    "/tsa",
    method="POST",
    summary="Time-stamping authority (RFC 3161)",
    response_class=Response,
    responses={200: _TSA_DOC, 400: _TSA_DOC, 413: _TSA_DOC},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {TSA_QUERY: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def tsa(request: Request) -> Response:
    services = _services(request)
    try:
        body = await _read_limited(request, services.settings.limits.protocol_body_bytes)
    except BodyTooLarge:
        answer = rejection("bad_request", "the request is too large")
        return Response(answer.der, status_code=413, media_type=TSA_REPLY)
    answer = await _answer(services, services.tsa.respond, body)
    status = 400 if answer.failure == "bad_data_format" else 200
    return Response(
        answer.der, status_code=status, media_type=TSA_REPLY, headers={"Cache-Control": "no-store"}
    )


_SLUG_TO_ISSUER = {slug: name for name, slug in URL_SLUGS.items()}


@router.get(
    "/crl/{name}.crl",
    summary="Certificate revocation list of a CA (DER)",
    response_class=Response,
    responses={200: {"content": {"application/pkix-crl": {}}}, 404: {"description": "No such CA"}},
)
def get_crl(name: str, services: ServicesDep) -> Response:
    issuer_name = _SLUG_TO_ISSUER.get(name)
    if issuer_name is None:
        return problem(404, "Not Found", f"no CRL named {name!r}; try root or citizen-ca")
    with services.session() as session:
        record = crl.current(
            session,
            services.keystore,
            services.pki.issuer(issuer_name),
            validity=_crl_validity(services),
        )
    max_age = max(0, int((as_utc(record.next_update) - utcnow()).total_seconds()) // 2)
    return Response(
        record.der,
        media_type="application/pkix-crl",
        headers={
            "Cache-Control": f"max-age={min(max_age, 300)}, public",
            "Last-Modified": format_datetime(as_utc(record.this_update), usegmt=True),
        },
    )


def _crl_validity(services: Services) -> timedelta:
    return timedelta(hours=services.settings.crl.validity_hours)


@router.get(
    "/ca/{name}.crt",
    summary="A certificate of the service's PKI (DER)",
    response_class=Response,
    responses={
        200: {"content": {"application/pkix-cert": {}}},
        404: {"description": "No such certificate"},
    },
)
def get_ca_certificate(name: str, services: ServicesDep) -> Response:
    pki = services.pki
    certificates = {
        "root": pki.root.certificate,
        "citizen-ca": pki.citizen_ca.certificate,
        "ocsp": pki.ocsp_responder.certificate,
        "tsa": pki.tsa.certificate,
        "qr-seal": pki.qr_seal.certificate,
    }
    certificate = certificates.get(name)
    if certificate is None:
        return problem(
            404, "Not Found", f"no certificate named {name!r}; try one of {', '.join(certificates)}"
        )
    return Response(
        certificate.dump(),
        media_type="application/pkix-cert",
        headers={"Cache-Control": "max-age=3600, public"},
    )
