"""Institutional e-seals: a relying party seals a PDF it generated, no person approving.

The caller is an OAuth client with the ``seal`` scope (client credentials) for which the
operator created a seal (``eid seal add``). The PDF is the request body.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from identity.errors import IdentityError
from identity.oauth.tokens import TokenInfo, check_bearer
from signing import Level
from signing.models import SealedDocument

from .. import idempotency, signing_flow
from ..deps import get_services
from ..sealing import SealRequest, seal
from ..services import Services
from ..uploads import document_store, receive_pdf

router = APIRouter(prefix="/api/v1/seals", tags=["seals"])
ServicesDep = Annotated[Services, Depends(get_services)]
SCOPE = "seal"


class SealNotFound(IdentityError):
    status = 404
    public = True
    slug = "sealed-document-not-found"
    title = "Sealed document not found"


def seal_token(
    services: ServicesDep,
    authorization: Annotated[
        str | None, Header(description="Bearer <access token with the seal scope>")
    ] = None,
) -> TokenInfo:
    with services.session() as db:
        return check_bearer(db, authorization, scope=SCOPE)


TokenDep = Annotated[TokenInfo, Depends(seal_token)]


class SealOut(BaseModel):
    id: str
    state: Literal["completed"] = "completed"
    level: str
    document_name: str
    document_id: str | None
    """The QR record's document id (hex), when the seal is visible."""
    document_url: str


def _out(row: SealedDocument) -> SealOut:
    return SealOut(
        id=row.public_id,
        level=row.level,
        document_name=row.document_name,
        document_id=row.qr_document_id,
        document_url=f"/api/v1/seals/{row.public_id}/document",
    )


def _find(services: Services, public_id: str, client_id: str) -> SealedDocument:
    with services.session() as db:
        row = db.exec(select(SealedDocument).where(SealedDocument.public_id == public_id)).first()
    if row is None or row.client_id != client_id:
        raise SealNotFound("no such sealed document of yours")
    return row


@router.post("", status_code=201, summary="Seal a PDF (request body) with the client's e-seal")
async def create_seal(
    request: Request,
    response: Response,
    services: ServicesDep,
    token: TokenDep,
    level: Annotated[Literal["B-B", "B-T", "B-LT", "B-LTA"], Query()] = "B-LTA",
    name: Annotated[str, Query(min_length=1, max_length=200)] = "document.pdf",
    title: Annotated[str | None, Query(max_length=200)] = None,
    reason: Annotated[str | None, Query(max_length=200)] = None,
    location: Annotated[str | None, Query(max_length=200)] = None,
    visible: bool = True,
    idempotency_key: Annotated[str | None, Header(alias=idempotency.HEADER, max_length=200)] = None,
) -> SealOut:
    key = idempotency.check_key(idempotency_key)
    principal = f"client:{token.client_id}"
    store = document_store(services)
    await run_in_threadpool(signing_flow.sweep, services, store)
    upload = await receive_pdf(request, services, store)
    try:
        claimed = None
        if key is not None:
            options = {"level": level, "name": name, "title": title, "reason": reason, "location": location}
            fingerprint = idempotency.fingerprint(
                "seal", [*options.items(), ("visible", visible)], upload.sha256
            )
            earlier = await idempotency.async_claim(services, principal, key, fingerprint)
            if earlier is not None:
                response.status_code = 200
                return _out(await run_in_threadpool(_find, services, earlier, token.client_id))
            claimed = (principal, key)
        try:
            row = await seal(
                services,
                store,
                client_id=token.client_id,
                source_blob=upload.blob_id,
                source_sha256=upload.sha256,
                request=SealRequest(
                    document_name=name,
                    title=title,
                    level=Level(level),
                    reason=reason,
                    location=location,
                    visible=visible,
                ),
                idempotency_key=claimed,
            )
        except BaseException:
            if claimed is not None:
                await idempotency.async_release(services, *claimed)
            raise
    finally:
        store.delete(upload.blob_id)
    return _out(row)


@router.get("/{seal_id}", summary="A sealed document's record")
async def get_seal(seal_id: str, services: ServicesDep, token: TokenDep) -> SealOut:
    return _out(await run_in_threadpool(_find, services, seal_id, token.client_id))


@router.get("/{seal_id}/document", summary="The sealed PDF", response_class=FileResponse)
async def download_seal(seal_id: str, services: ServicesDep, token: TokenDep) -> FileResponse:
    row = await run_in_threadpool(_find, services, seal_id, token.client_id)
    store = document_store(services)
    if not store.exists(row.signed_blob):
        raise SealNotFound("the sealed document was deleted after its retention time")
    return FileResponse(store.path(row.signed_blob), media_type="application/pdf", filename=row.document_name)
