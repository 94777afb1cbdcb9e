"""Public validation of signed PDFs: JSON for programs, a page for people, a sealed PDF.

- ``POST /api/v1/verify`` (multipart, the PDF in the field ``file``): the JSON report;
  ``?format=pdf`` (or ``POST /api/v1/verify/report.pdf``) gives the same report as a PDF
  sealed with the service's seal (PAdES B-LTA).
- ``GET /verify``: an upload form; ``POST /verify``: the report as a page.

The upload is streamed to a temporary file and refused past ``EID_LIMITS__DOCUMENT_BYTES``;
validation runs in the worker pool (time and memory limits). Our own certificates'
status comes from our OCSP responder and CRLs, asked in process; nothing is fetched.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from asn1crypto import x509
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from python_multipart.multipart import MultipartParser, parse_options_header

from keys import crl as crls
from keys.models import utcnow
from signing import InProcessRevocation, InProcessTimeStamper, Level, async_sign_with_keystore
from verification import (
    DocumentReport,
    Limits,
    RevocationData,
    TrustConfig,
    UnreadableDocument,
    VerificationError,
    WorkerPool,
    build_trust,
    render_report_pdf,
)

from .. import pages
from ..deps import get_services
from ..services import Services

router = APIRouter(tags=["verification"])
ServicesDep = Annotated[Services, Depends(get_services)]
_MULTIPART_OVERHEAD = 64 * 1024
# The body is parsed by hand (streamed under the limit), so its schema is declared here.
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": "The PDF"}},
                }
            }
        },
    }
}
_pool_lock = threading.Lock()


class UploadRejected(VerificationError):
    """Not a multipart form with exactly one file in the field ``file``."""

    status = 400
    public = True
    slug = "upload-rejected"
    title = "Upload rejected"


class UploadTooLarge(VerificationError):
    """The upload is larger than the document limit."""

    status = 413
    public = True
    slug = "document-too-large"
    title = "Document too large"


def trust_config(services: Services) -> TrustConfig:
    pki = services.pki
    own = (pki.citizen_ca, pki.tsa, pki.ocsp_responder, pki.qr_seal)
    settings = services.settings.verification
    return build_trust(
        (pki.root.certificate.dump(),),
        tuple(item.certificate.dump() for item in own),
        anchor_folder=settings.extra_trust_anchors,
        trusted_list=settings.trusted_list,
    )


def pool(request: Request, services: Services) -> WorkerPool:
    """One pool per app, started on first use (the workers are daemon processes)."""
    state = request.app.state
    with _pool_lock:
        current: WorkerPool | None = getattr(state, "verification_pool", None)
        if current is None:
            settings = services.settings.verification
            limits = Limits(
                workers=settings.workers,
                timeout_seconds=settings.timeout_seconds,
                memory_mb=settings.memory_mb,
            )
            current = WorkerPool(trust=trust_config(services), limits=limits)
            state.verification_pool = current
        return current


def revocation_source(services: Services) -> InProcessRevocation:
    """Our OCSP responder and CRLs, asked in process (as the signing flow does)."""
    pki = services.pki

    def current_crls() -> list[bytes]:
        with services.session() as db:
            return [crls.current(db, services.keystore, issuer).der for issuer in (pki.root, pki.citizen_ca)]

    return InProcessRevocation(
        trust_roots=(pki.root.certificate.dump(),),
        certificates=tuple(
            item.certificate.dump() for item in (pki.citizen_ca, pki.tsa, pki.ocsp_responder, pki.qr_seal)
        ),
        ocsp_issuers=(pki.citizen_ca.certificate.dump(),),
        ask_ocsp=lambda der: services.ocsp.respond(der, now=utcnow()).der,
        crls=current_crls,
    )


def revocation_provider(services: Services) -> Any:
    source = revocation_source(services)

    async def provide(certificates: tuple[bytes, ...]) -> RevocationData:
        data = await source.async_validation_data([x509.Certificate.load(der) for der in certificates])
        return RevocationData(ocsp_responses=data.ocsp_responses, crls=data.crls)

    return provide


async def receive_upload(request: Request, services: Services) -> tuple[Path, str | None]:
    """Stream the ``file`` part of a multipart body to a temporary file, under the limit."""
    limit = services.settings.limits.document_bytes
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UploadRejected("send the PDF as multipart/form-data in the field 'file'")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + _MULTIPART_OVERHEAD:
        raise UploadTooLarge(f"the document is larger than {limit // (1024 * 1024)} MB")
    directory = services.settings.data_dir / "tmp"
    directory.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="verify-", suffix=".pdf", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            filename = await _parse(request.stream(), boundary, out, limit)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, filename


async def _parse(chunks: AsyncIterator[bytes], boundary: bytes, out: Any, limit: int) -> str | None:
    state: dict[str, Any] = {
        "headers": {},
        "field": b"",
        "value": b"",
        "in_file": False,
        "files": 0,
        "size": 0,
    }

    def on_part_begin() -> None:
        state.update(headers={}, field=b"", value=b"", in_file=False)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state.update(field=b"", value=b"")

    def on_headers_finished() -> None:
        _, params = parse_options_header(state["headers"].get(b"content-disposition", b""))
        if params.get(b"name") == b"file":
            state["files"] += 1
            if state["files"] > 1:
                raise UploadRejected("send one file in the field 'file'")
            state["in_file"] = True
            state["filename"] = params.get(b"filename", b"").decode("utf-8", "replace")[:200] or None

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"]:
            state["size"] += end - start
            if state["size"] > limit:
                raise UploadTooLarge(f"the document is larger than {limit // (1024 * 1024)} MB")
            out.write(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except VerificationError:
        raise
    except Exception as exc:  # noqa: BLE001 - python-multipart's parse errors
        raise UploadRejected("the multipart body is malformed") from exc
    if not state["files"]:
        raise UploadRejected("no file in the field 'file'")
    result: str | None = state.get("filename")
    return result


async def verify_upload(request: Request, services: Services) -> DocumentReport:
    path, filename = await receive_upload(request, services)
    try:
        return await pool(request, services).async_validate(
            path, revocation=revocation_provider(services), document_name=filename
        )
    finally:
        path.unlink(missing_ok=True)


async def sealed_report(services: Services, report: DocumentReport) -> bytes:
    """The report as a PDF sealed with the service's seal (B-LTA, our TSA and revocation)."""
    pki = services.pki
    with tempfile.TemporaryDirectory(dir=services.settings.data_dir) as work:
        source = Path(work) / "report.pdf"
        source.write_bytes(render_report_pdf(report))
        out = await async_sign_with_keystore(
            source,
            Path(work) / "report-sealed.pdf",
            workdir=Path(work),
            keystore=services.keystore,
            key_id=pki.qr_seal.key_id,
            certificate=pki.qr_seal.certificate.dump(),
            chain=[pki.root.certificate.dump()],
            timestamper=InProcessTimeStamper(lambda der: services.tsa.respond(der, now=utcnow()).der),
            validation=revocation_source(services),
            level=Level.B_LTA,
            reason="Signature validation report",
        )
        return out.read_bytes()


def _pdf(data: bytes) -> Response:
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="validation-report.pdf"'},
    )


@router.post(
    "/api/v1/verify",
    summary="Validate the signatures of a PDF (multipart field 'file')",
    openapi_extra=_UPLOAD_BODY,
)
async def verify(
    request: Request,
    services: ServicesDep,
    format: Annotated[
        Literal["json", "pdf"], Query(description="`pdf`: the report sealed as a PDF")
    ] = "json",
) -> Response:
    report = await verify_upload(request, services)
    if format == "pdf":
        return _pdf(await sealed_report(services, report))
    return JSONResponse(report.to_dict())


@router.post(
    "/api/v1/verify/report.pdf",
    summary="Validate a PDF; the report as a sealed PDF",
    openapi_extra=_UPLOAD_BODY,
)
async def verify_pdf_report(request: Request, services: ServicesDep) -> Response:
    report = await verify_upload(request, services)
    return _pdf(await sealed_report(services, report))


_PAGE_ERRORS: dict[type[VerificationError], str] = {
    UploadRejected: "verify.error.no_file",
    UploadTooLarge: "verify.error.too_large",
    UnreadableDocument: "verify.error.unreadable",
}


@router.get("/verify", response_class=HTMLResponse, include_in_schema=False)
async def verify_page(request: Request) -> HTMLResponse:
    return pages.render("verify.html", {"error": None, "detail": None}, request=request)


@router.post("/verify", response_class=HTMLResponse, include_in_schema=False)
async def verify_page_upload(request: Request, services: ServicesDep) -> HTMLResponse:
    try:
        report = await verify_upload(request, services)
    except (UploadRejected, UploadTooLarge, UnreadableDocument) as exc:
        # A sentence in the visitor's language first; the validator's own words one click away.
        context = {"error": _PAGE_ERRORS[type(exc)], "detail": str(exc)}
        return pages.render("verify.html", context, status=exc.status, request=request)
    return pages.render("verify_report.html", {"report": report}, request=request)
