"""Signing a PDF with the citizen's signing key (PAdES), started by the citizen.

The PDF is the request body (``application/pdf``), streamed to the blob store under the
size limit; options are query parameters. The caller is either a logged-in browser
(session cookie) or the citizen app (``Authorization: EID-App …``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from identity import app_tokens, authentication
from identity.models import ApprovalRequest
from signing import InvalidSigningRequest, Level, StampPosition
from signing.models import SigningSession

from .. import cookies, idempotency, signing_flow
from ..deps import get_services
from ..services import Services
from ..uploads import document_store, receive_pdf
from .me import NotLoggedIn

router = APIRouter(prefix="/api/v1/signing", tags=["signing"])
ServicesDep = Annotated[Services, Depends(get_services)]


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
    response: Response,
    services: ServicesDep,
    level: Annotated[Literal["B-B", "B-T", "B-LT", "B-LTA"], Query()] = "B-LTA",
    name: Annotated[str, Query(max_length=200)] = "document.pdf",
    reason: Annotated[str | None, Query(max_length=200)] = None,
    location: Annotated[str | None, Query(max_length=200)] = None,
    visible: bool = True,
    page: Annotated[
        int,
        Query(
            ge=-10000,
            le=10000,
            description="Page of the visible stamp, counted from 1; negative counts from the end "
            "(-1, the default, is the last page). 0 is refused.",
        ),
    ] = -1,
    position: Annotated[StampPosition, Query(description="Corner of the page for the stamp.")] = (
        StampPosition.BOTTOM_RIGHT
    ),
    idempotency_key: Annotated[str | None, Header(alias=idempotency.HEADER, max_length=200)] = None,
) -> SessionOut:
    if page == 0:
        raise InvalidSigningRequest("page numbers start at 1 (or count back from -1, the last page)")
    citizen_id, initiator = await run_in_threadpool(_principal, request, services)
    key = idempotency.check_key(idempotency_key)
    store = document_store(services)
    await run_in_threadpool(signing_flow.sweep, services, store)  # retention, on the way
    upload = await receive_pdf(request, services, store)
    claimed = None
    try:
        if key is not None:
            principal = f"citizen:{citizen_id}"
            options = {"level": level, "name": name, "reason": reason, "location": location}
            options |= {"page": str(page), "position": position.value}
            fingerprint = idempotency.fingerprint(
                "signing", [*options.items(), ("visible", visible)], upload.sha256
            )
            earlier = await idempotency.async_claim(services, principal, key, fingerprint)
            if earlier is not None:
                store.delete(upload.blob_id)
                response.status_code = 200
                return await run_in_threadpool(_out_by_id, services, earlier, citizen_id)
            claimed = (principal, key)
        started = await signing_flow.start(
            services,
            store,
            citizen_id=citizen_id,
            initiator=initiator,
            source_blob=upload.blob_id,
            source_sha256=upload.sha256,
            document_name=name,
            level=Level(level),
            reason=reason,
            location=location,
            visible=visible,
            stamp_page=page - 1 if page > 0 else page,
            stamp_position=position,
            idempotency_key=claimed,
        )
    except BaseException:
        store.delete(upload.blob_id)
        if claimed is not None:
            await idempotency.async_release(services, *claimed)
        raise
    return await run_in_threadpool(_session_out, services, started.session)


def _out_by_id(services: Services, public_id: str, citizen_id: int) -> SessionOut:
    with services.session() as db:
        return _out(db, signing_flow.find(db, public_id, citizen_id))


def _session_out(services: Services, row: SigningSession) -> SessionOut:
    with services.session() as db:
        return _out(db, row)


def _out(db: Session, row: SigningSession) -> SessionOut:
    code = None
    if row.state == "awaiting_signature":
        request = db.exec(select(ApprovalRequest).where(ApprovalRequest.public_id == row.approval_id)).first()
        code = request.verification_code if request is not None else None
    return SessionOut(
        id=row.public_id,
        state=row.state,
        level=row.level,
        document_name=row.document_name,
        verification_code=code,
        failure_reason=row.failure_reason,
    )


@router.get("/{session_id}", summary="State of a signing session (finishes it once approved)")
async def get_session(
    session_id: str, request: Request, services: ServicesDep, wait: bool = False
) -> SessionOut:
    citizen_id, _ = await run_in_threadpool(_principal, request, services)
    store = document_store(services)
    if wait:
        row = await signing_flow.wait_until_settled(services, store, session_id, citizen_id)
    else:
        row = await signing_flow.advance(services, store, session_id, citizen_id)
    return await run_in_threadpool(_session_out, services, row)


@router.get("/{session_id}/document", summary="The signed PDF", response_class=FileResponse)
async def download(session_id: str, request: Request, services: ServicesDep) -> FileResponse:
    citizen_id, _ = await run_in_threadpool(_principal, request, services)
    store = document_store(services)
    row = await signing_flow.advance(services, store, session_id, citizen_id)
    if row.state != "completed" or row.signed_blob is None:
        raise signing_flow.SessionNotFound(f"the signed document is not ready (state: {row.state})")
    return FileResponse(store.path(row.signed_blob), media_type="application/pdf", filename=row.document_name)
