"""QR-coded certificates: the page a scanned code opens, its JSON twin, the status of a
document, a photo of the code checked on the server, and the published seal keys.

Everything here is public: a verifier needs no account. Bad tokens get a readable page
(people) or an RFC 9457 problem (API), never a 500.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from verification import (
    DocumentStatus,
    InvalidQrToken,
    QrClaims,
    QrDocumentNotFound,
    QrImageRejected,
    QrImageTooLarge,
    document_status,
    find_token,
    load_qr_keys,
    read_token,
)

from .. import i18n
from ..deps import get_services
from ..pages import render
from ..services import Services

router = APIRouter(tags=["verification"])
ServicesDep = Annotated[Services, Depends(get_services)]
IMAGE_BYTES = 10 * 1024 * 1024
_CHUNK = 1024 * 1024


class QrClaimsOut(BaseModel):
    type: str = Field(description="signature or seal")
    document_id: str = Field(description="128-bit document id, hex")
    document_sha256: str = Field(description="SHA-256 of the document before signing, hex")
    display_name: str = Field(description="Signer's or seal's name as sealed in the token (may end in …)")
    issued_at: datetime
    organisation: str | None = None
    title: str | None = None
    kid: str = Field(description="Key id of the QR seal key, base64url (as in the JWKS)")


class QrStatusOut(BaseModel):
    document_id: str
    state: str = Field(description="valid, revoked, or unknown (signed by us but not recorded here)")
    type: str | None = None
    display_name: str | None = Field(None, description="In full, from the status table")
    organisation: str | None = None
    title: str | None = None
    issued_at: datetime | None = None
    revoked_at: datetime | None = None
    revocation_reason: str | None = None


class QrVerificationOut(BaseModel):
    verified: bool = Field(description="The token's seal verified with one of our published keys")
    claims: QrClaimsOut
    status: QrStatusOut


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _status_out(document_id: str, status: DocumentStatus | None) -> QrStatusOut:
    if status is None:
        return QrStatusOut(document_id=document_id, state="unknown")
    return QrStatusOut(
        document_id=status.document_id,
        state=status.state.value,
        type=status.kind.value,
        display_name=status.display_name,
        organisation=status.organisation,
        title=status.title,
        issued_at=status.issued_at,
        revoked_at=status.revoked_at,
        revocation_reason=status.revocation_reason,
    )


def _verify(services: Services, token: str) -> tuple[QrClaims, DocumentStatus | None]:
    """Check the token, then look its document up (``None`` when not recorded here)."""
    with services.session() as db:
        claims = read_token(token, load_qr_keys(db))
        try:
            return claims, document_status(db, claims.document_id_hex)
        except QrDocumentNotFound:
            return claims, None


def _verification(claims: QrClaims, status: DocumentStatus | None) -> QrVerificationOut:
    return QrVerificationOut(
        verified=True,
        claims=QrClaimsOut(
            type=claims.kind.value,
            document_id=claims.document_id_hex,
            document_sha256=claims.document_sha256.hex(),
            display_name=claims.display_name,
            issued_at=claims.issued_at,
            organisation=claims.organisation,
            title=claims.title,
            kid=_b64url(claims.kid),
        ),
        status=_status_out(claims.document_id_hex, status),
    )


class UploadTooLarge(Exception):
    pass


async def _form_file(request: Request, limit: int) -> UploadFile | None:
    """The multipart field ``file``, refusing bodies over ``limit`` before they are stored."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge
    received = 0

    async def receive() -> Any:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise UploadTooLarge
        return message

    limited = Request(request.scope, receive)
    form = await limited.form(max_files=1, max_fields=4)
    upload = form.get("file")
    return upload if isinstance(upload, UploadFile) else None


def _page(
    request: Request,
    services: Services,
    token: str,
    verified: tuple[QrClaims, DocumentStatus | None] | None = None,
    **extra: Any,
) -> HTMLResponse:
    try:
        claims, status = verified or _verify(services, token)
    except InvalidQrToken as exc:
        t = i18n.Translator(i18n.choose(request))
        context: dict[str, Any] = {
            "title": t("qr.error.title"),
            "detail": t.get(f"qr.error.{exc.slug}", t("qr.error.detail")),
            "advice": t("qr.error.advice"),
        }
        return render("error.html", context, status=exc.status, request=request)
    context = {"claims": claims, "status": status, "action": f"/v/{token}", **extra}
    return render("qr.html", context, request=request)


@router.get("/v/{token}", summary="Verification page a QR code opens", response_class=HTMLResponse)
@router.get("/V/{token}", include_in_schema=False)
def qr_page(token: str, request: Request, services: ServicesDep) -> HTMLResponse:
    return _page(request, services, token)


def _prefix_digest(upload: UploadFile, length: int) -> tuple[bytes, int]:
    """SHA-256 of the first ``length`` bytes of the upload, and the upload's size."""
    digest, left, size = hashlib.sha256(), length, 0
    upload.file.seek(0)
    while chunk := upload.file.read(_CHUNK):
        size += len(chunk)
        if left > 0:
            digest.update(chunk[:left])
            left -= len(chunk[:left])
    return digest.digest(), size


@router.post("/v/{token}", summary="Check an uploaded PDF against the QR code", response_class=HTMLResponse)
@router.post("/V/{token}", include_in_schema=False)
async def qr_page_check(token: str, request: Request, services: ServicesDep) -> HTMLResponse:
    limit = services.settings.limits.document_bytes
    try:
        upload = await _form_file(request, limit)
    except UploadTooLarge:
        return await run_in_threadpool(
            _page, request, services, token, check="too-large", limit_mb=limit // 2**20
        )
    if upload is None:
        return await run_in_threadpool(_page, request, services, token, check="no-file")
    try:
        claims, status = await run_in_threadpool(_verify, services, token)
    except InvalidQrToken:
        await upload.close()
        return await run_in_threadpool(_page, request, services, token)
    verified = (claims, status)
    if status is None:
        await upload.close()
        return _page(request, services, token, verified, check="unknown")
    try:
        digest, size = await run_in_threadpool(_prefix_digest, upload, status.document_length)
    finally:
        await upload.close()
    # The token's hash is of the document before signing; the signed PDF appends to it.
    matches = size >= status.document_length and digest == claims.document_sha256
    check = "match" if matches else "mismatch"
    return _page(request, services, token, verified, check=check, added=size - status.document_length)


@router.get("/api/v1/qr/status/{document_id}", summary="Status of a signed or sealed document")
def qr_status(document_id: str, services: ServicesDep) -> QrStatusOut:
    with services.session() as db:
        status = document_status(db, document_id)
    return _status_out(status.document_id, status)


@router.get(
    "/api/v1/qr/{token}",
    summary="Verify a QR token: its claims and the document's status",
    responses={400: {"description": "Malformed token"}, 422: {"description": "Token rejected"}},
)
def qr_json(token: str, services: ServicesDep) -> QrVerificationOut:
    return _verification(*_verify(services, token))


@router.post(
    "/api/v1/verify/qr-image",
    summary="Verify the QR code in a photo or screenshot (multipart field `file`, PNG or JPEG)",
    responses={413: {"description": "Image too large"}, 422: {"description": "No usable QR code"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def qr_image(request: Request, services: ServicesDep) -> QrVerificationOut:
    try:
        upload = await _form_file(request, IMAGE_BYTES)
    except UploadTooLarge:
        raise QrImageTooLarge(f"the image is larger than {IMAGE_BYTES // 2**20} MB") from None
    if upload is None:
        raise QrImageRejected("send the image in the multipart field `file`")
    try:
        data = await upload.read()
    finally:
        await upload.close()
    token = await run_in_threadpool(find_token, data, services.settings.public_url)
    return _verification(*await run_in_threadpool(_verify, services, token))


@router.get("/.well-known/eid-qr-keys.json", summary="QR seal public keys (JWKS) for offline checks")
def qr_keys(services: ServicesDep) -> JSONResponse:
    with services.session() as db:
        keys = load_qr_keys(db)
    return JSONResponse(keys.jwks(), headers={"Cache-Control": "max-age=3600, public"})
