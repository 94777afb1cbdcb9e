"""Signing a PDF with the citizen's signing key (PAdES), started by the citizen.

The PDF is the request body (``application/pdf``), streamed to the blob store under the
size limit; options are query parameters. The caller is either a logged-in browser
(session cookie) or the citizen app (``Authorization: EID-App …``).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from identity import app_tokens, authentication
from keys.blobs import BlobStore
from signing import Level, check_document
from signing.errors import InvalidDocument

from .. import cookies, signing_flow
from ..deps import get_services
from ..services import Services
from .me import NotLoggedIn

router = APIRouter(prefix="/api/v1/signing", tags=["signing"])
ServicesDep = Annotated[Services, Depends(get_services)]
PARSE_SECONDS = 30


def blobs(services: Services) -> BlobStore:
    return BlobStore(services.settings.data_dir / "documents")


def _principal(request: Request, services: Services) -> tuple[int, str]:
    authorization = request.headers.get("authorization")
    with services.session() as db:
        if authorization and authorization.startswith(app_tokens.SCHEME + " "):
            caller = app_tokens.authenticate(
                db,
                authorization,
                method=request.method,
                url=services.settings.public_url.rstrip("/") + request.url.path,
                audience=services.settings.public_url,
            )
            assert caller.citizen.id is not None
            return caller.citizen.id, f"device {caller.device.public_id}"
        identity = authentication.session_identity(db, request.cookies.get(cookies.SESSION))
    if identity is None:
        raise NotLoggedIn("log in, or call with the app's request token")
    return identity.citizen_id, "browser session"


class SessionOut(BaseModel):
    id: str
    state: str
    level: str
    document_name: str
    verification_code: str | None = None
    failure_reason: str | None = None


@router.post("", status_code=201, summary="Upload a PDF (request body) and start signing it")
async def start_signing(
    request: Request,
    services: ServicesDep,
    level: Annotated[Literal["B-B", "B-T", "B-LT", "B-LTA"], Query()] = "B-LTA",
    name: Annotated[str, Query(max_length=200)] = "document.pdf",
    reason: Annotated[str | None, Query(max_length=200)] = None,
    location: Annotated[str | None, Query(max_length=200)] = None,
    visible: bool = True,
) -> SessionOut:
    citizen_id, initiator = await run_in_threadpool(_principal, request, services)
    store = blobs(services)
    await run_in_threadpool(signing_flow.sweep, services, store)  # retention, on the way
    limit = services.settings.limits.document_bytes
    blob_id, _size = await store.async_write_stream(request.stream(), limit=limit)
    try:
        try:
            await asyncio.wait_for(asyncio.to_thread(check_document, store.path(blob_id)), PARSE_SECONDS)
        except TimeoutError:
            raise InvalidDocument(f"the PDF could not be read within {PARSE_SECONDS} seconds") from None
        started = await signing_flow.start(
            services,
            store,
            citizen_id=citizen_id,
            initiator=initiator,
            source_blob=blob_id,
            document_name=name,
            level=Level(level),
            reason=reason,
            location=location,
            visible=visible,
        )
    except BaseException:
        store.delete(blob_id)
        raise
    row = started.session
    return SessionOut(
        id=row.public_id,
        state=row.state,
        level=row.level,
        document_name=row.document_name,
        verification_code=started.verification_code,
    )


@router.get("/{session_id}", summary="State of a signing session (finishes it once approved)")
async def get_session(
    session_id: str, request: Request, services: ServicesDep, wait: bool = False
) -> SessionOut:
    citizen_id, _ = await run_in_threadpool(_principal, request, services)
    store = blobs(services)
    if wait:
        row = await signing_flow.wait_until_settled(services, store, session_id, citizen_id)
    else:
        row = await signing_flow.advance(services, store, session_id, citizen_id)
    return SessionOut(
        id=row.public_id,
        state=row.state,
        level=row.level,
        document_name=row.document_name,
        failure_reason=row.failure_reason,
    )


@router.get("/{session_id}/document", summary="The signed PDF", response_class=FileResponse)
async def download(session_id: str, request: Request, services: ServicesDep) -> FileResponse:
    citizen_id, _ = await run_in_threadpool(_principal, request, services)
    store = blobs(services)
    row = await signing_flow.advance(services, store, session_id, citizen_id)
    if row.state != "completed" or row.signed_blob is None:
        raise signing_flow.SessionNotFound(f"the signed document is not ready (state: {row.state})")
    return FileResponse(store.path(row.signed_blob), media_type="application/pdf", filename=row.document_name)
