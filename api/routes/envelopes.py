"""Envelopes: a document several citizens sign in turn.

Created by a citizen (the app's request token or a browser session) or by a relying
party (OAuth2 access token with the ``signing`` scope, client credentials). Signers see
envelopes waiting for them in ``GET /api/v1/envelopes`` and start their signature with
``POST /api/v1/envelopes/{id}/sign``, which answers like ``POST /api/v1/signing``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from identity.oauth.tokens import check_bearer
from signing import Level
from signing.models import SigningEnvelope, SigningSession

from .. import envelopes, idempotency, signing_flow
from ..deps import get_services
from ..envelopes import NewEnvelope, Principal
from ..services import Services
from ..uploads import document_store, receive_pdf
from .signing import SessionOut, _out, _principal

router = APIRouter(prefix="/api/v1/envelopes", tags=["envelopes"])
ServicesDep = Annotated[Services, Depends(get_services)]
SCOPE = "signing"


def _who(request: Request, services: Services) -> Principal:
    authorization = request.headers.get("authorization") or ""
    if authorization.lower().startswith("bearer "):
        with services.session() as db:
            token = check_bearer(db, authorization, scope=SCOPE)
        return Principal(client_id=token.client_id)
    citizen_id, _ = _principal(request, services)
    return Principal(citizen_id=citizen_id)


class SignerOut(BaseModel):
    position: int
    name: str
    state: str
    signed_at: datetime | None


class EnvelopeOut(BaseModel):
    id: str
    state: str
    document_name: str
    level: str
    ordered: bool
    signers: list[SignerOut]
    your_turn: bool
    """The caller is a signer who may start their signature now."""
    created_at: datetime
    completed_at: datetime | None


def _envelope_out(db: Session, envelope: SigningEnvelope, principal: Principal) -> EnvelopeOut:
    listed = envelopes.signers(db, envelope)
    turn = False
    if envelope.state == "open" and principal.citizen_id is not None:
        for signer, _ in listed:
            if signer.citizen_id == principal.citizen_id and signer.state == "waiting":
                earlier = [s for s, _ in listed if s.position < signer.position]
                turn = not envelope.ordered or all(s.state == "signed" for s in earlier)
    return EnvelopeOut(
        id=envelope.public_id,
        state=envelope.state,
        document_name=envelope.document_name,
        level=envelope.level,
        ordered=envelope.ordered,
        signers=[
            SignerOut(
                position=signer.position + 1,
                name=f"{citizen.given_name} {citizen.family_name}",
                state=signer.state,
                signed_at=signer.signed_at,
            )
            for signer, citizen in listed
        ],
        your_turn=turn and envelope.busy_session is None,
        created_at=envelope.created_at,
        completed_at=envelope.completed_at,
    )


@router.post("", status_code=201, summary="Upload a PDF (request body) for several signers")
async def create_envelope(
    request: Request,
    response: Response,
    services: ServicesDep,
    signer: Annotated[list[str], Query(description="Personal code of a signer (repeat, in order)")],
    ordered: bool = True,
    level: Annotated[Literal["B-B", "B-T", "B-LT", "B-LTA"], Query()] = "B-LTA",
    name: Annotated[str, Query(min_length=1, max_length=200)] = "document.pdf",
    reason: Annotated[str | None, Query(max_length=200)] = None,
    visible: bool = True,
    idempotency_key: Annotated[str | None, Header(alias=idempotency.HEADER, max_length=200)] = None,
) -> EnvelopeOut:
    principal = await run_in_threadpool(_who, request, services)
    key = idempotency.check_key(idempotency_key)
    store = document_store(services)
    await run_in_threadpool(signing_flow.sweep, services, store)
    upload = await receive_pdf(request, services, store)
    claimed = None
    spec = NewEnvelope(
        document_name=name,
        level=Level(level),
        signer_codes=tuple(signer),
        ordered=ordered,
        reason=reason,
        visible=visible,
    )

    def work() -> tuple[EnvelopeOut, bool]:
        nonlocal claimed
        with services.session() as db:
            if key is not None:
                options = [("signers", spec.signer_codes), ("ordered", ordered), ("level", level)]
                options += [("name", name), ("reason", reason), ("visible", visible)]
                fingerprint = idempotency.fingerprint("envelope", options, upload.sha256)
                earlier = idempotency.claim(db, principal.ref, key, fingerprint)
                if earlier is not None:
                    return _envelope_out(db, envelopes.find(db, earlier, principal), principal), True
                claimed = (principal.ref, key)
            envelope = envelopes.create(
                db,
                initiator=principal,
                source_blob=upload.blob_id,
                spec=spec,
                retention_hours=services.settings.limits.document_retention_hours,
                idempotency_key=claimed,
            )
            return _envelope_out(db, envelope, principal), False

    try:
        out, repeated = await run_in_threadpool(work)
    except BaseException:
        store.delete(upload.blob_id)
        if claimed is not None:
            await idempotency.async_release(services, *claimed)
        raise
    if repeated:
        store.delete(upload.blob_id)  # the earlier request's upload is the envelope's
        response.status_code = 200
    return out


@router.get("", summary="Envelopes you started or must sign")
async def list_envelopes(request: Request, services: ServicesDep) -> list[EnvelopeOut]:
    def work() -> list[EnvelopeOut]:
        principal = _who(request, services)
        with services.session() as db:
            return [_envelope_out(db, row, principal) for row in envelopes.visible_to(db, principal)]

    return await run_in_threadpool(work)


async def _catch_up(services: Services, envelope_id: str) -> None:
    """Move the envelope's signing session on (an approval answered since), so the
    envelope's state is current however the caller learns of it."""

    def busy_session() -> SigningSession | None:
        with services.session() as db:
            row = db.exec(select(SigningEnvelope).where(SigningEnvelope.public_id == envelope_id)).first()
            busy = row.busy_session if row is not None else None
            if not busy or not busy.startswith("sg-"):
                return None
            return db.exec(select(SigningSession).where(SigningSession.public_id == busy)).first()

    session = await run_in_threadpool(busy_session)
    if session is not None:
        await signing_flow.advance(services, document_store(services), session.public_id, session.citizen_id)


@router.get("/{envelope_id}", summary="Who has signed, who is pending")
async def get_envelope(envelope_id: str, request: Request, services: ServicesDep) -> EnvelopeOut:
    await _catch_up(services, envelope_id)

    def work() -> EnvelopeOut:
        principal = _who(request, services)
        with services.session() as db:
            return _envelope_out(db, envelopes.find(db, envelope_id, principal), principal)

    return await run_in_threadpool(work)


@router.post("/{envelope_id}/sign", status_code=201, summary="Start your signature on the envelope")
async def sign_envelope(envelope_id: str, request: Request, services: ServicesDep) -> SessionOut:
    citizen_id, initiator = await run_in_threadpool(_principal, request, services)
    principal = Principal(citizen_id=citizen_id)
    store = document_store(services)

    def take_turn() -> tuple[SigningEnvelope, str, int]:
        with services.session() as db:
            envelope = envelopes.find(db, envelope_id, principal)
            claim, slot = envelopes.claim_turn(db, envelope, citizen_id)
            return envelope, claim, slot

    def bind(session_public_id: str | None) -> None:
        with services.session() as db:
            envelopes.bind_claim(db, row_id, claim, session_public_id)

    envelope, claim, slot = await run_in_threadpool(take_turn)
    assert envelope.id is not None
    row_id, blob = envelope.id, envelope.current_blob
    try:
        sha256 = await run_in_threadpool(_file_sha256, store.path(blob))
        started = await signing_flow.start(
            services,
            store,
            citizen_id=citizen_id,
            initiator=f"envelope {envelope_id}",
            source_blob=blob,
            source_sha256=sha256,
            document_name=envelope.document_name,
            level=Level(envelope.level),
            reason=envelope.reason,
            location=None,
            visible=envelope.visible,
            envelope_id=row_id,
            stamp_slot=slot,
        )
    except BaseException:
        await run_in_threadpool(bind, None)
        raise
    await run_in_threadpool(bind, started.session.public_id)

    def out() -> SessionOut:
        with services.session() as db:
            return _out(db, started.session)

    return await run_in_threadpool(out)


@router.post("/{envelope_id}/cancel", summary="Withdraw an open envelope (its creator only)")
async def cancel_envelope(envelope_id: str, request: Request, services: ServicesDep) -> EnvelopeOut:
    def work() -> EnvelopeOut:
        principal = _who(request, services)
        with services.session() as db:
            envelope = envelopes.cancel(db, envelopes.find(db, envelope_id, principal), principal)
            return _envelope_out(db, envelope, principal)

    return await run_in_threadpool(work)


@router.get(
    "/{envelope_id}/document", summary="The latest version of the document", response_class=FileResponse
)
async def envelope_document(envelope_id: str, request: Request, services: ServicesDep) -> FileResponse:
    def work() -> SigningEnvelope:
        principal = _who(request, services)
        with services.session() as db:
            return envelopes.find(db, envelope_id, principal)

    envelope = await run_in_threadpool(work)
    store = document_store(services)
    filename = envelope.document_name
    return FileResponse(store.path(envelope.current_blob), media_type="application/pdf", filename=filename)


def _file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.digest()
