"""Endpoints the citizen app calls with its device-signed request tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from identity import app_tokens, approvals
from identity.answering import AppAnswer
from identity.app_tokens import AppCaller
from identity.models import ApprovalRequest
from keys.dbapi import Tx
from keys.models import utcnow

from ..deps import get_services
from ..services import Services
from ._binary import Base64Bytes, encode
from ._lean import (
    VALIDATION_ERROR,
    documented,
    json_body,
    json_model,
    lean,
    parameter,
    request_path,
)
from ._responses import json_response

router = APIRouter(prefix="/api/v1/app", tags=["citizen app"])
ServicesDep = Annotated[Services, Depends(get_services)]


AuthorizationHeader = Annotated[str | None, Header(description="EID-App <request token>")]


def _authenticate(
    request: Request, services: Services, session: Session, authorization: str | None
) -> AppCaller:
    return app_tokens.authenticate(
        session,
        authorization,
        method=request.method,
        url=services.settings.public_url.rstrip("/") + request_path(request),
        audience=services.settings.public_url,
    )


def app_caller(
    request: Request, services: ServicesDep, authorization: AuthorizationHeader = None
) -> AppCaller:
    with services.session() as session:
        caller = _authenticate(request, services, session, authorization)
        session.expunge_all()
        return caller


CallerDep = Annotated[AppCaller, Depends(app_caller)]


class RequestOut(BaseModel):
    id: str
    kind: str
    state: str
    verification_code: str
    display_text: str
    hash: str = Field(description="Base64 of the hash to sign as a digest")
    hash_algorithm: str
    created_at: datetime
    expires_at: datetime


class RequestList(BaseModel):
    requests: list[RequestOut]


def _out(row: ApprovalRequest) -> RequestOut:
    return RequestOut(
        id=row.public_id,
        kind=row.kind,
        state=row.state,
        verification_code=row.verification_code,
        display_text=row.display_text,
        hash=encode(row.hash),
        hash_algorithm=row.hash_algorithm,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


_APP_TOKEN = parameter("Authorization", "header", "EID-App <request token>")


@lean(
    router,
    "/requests",
    method="GET",
    response_model=RequestList,
    summary="Pending approval requests of the device's citizen",
    openapi_extra=documented(_APP_TOKEN),
)
async def list_requests(request: Request) -> Response:
    # Polled by every app and read on every login: the token check, its jti and the list
    # run as one job of the answer writer (one commit shared with other calls; no
    # thread-pool hop of FastAPI's for a dependency and another for the route). Its
    # parameters are read off the request (``_lean``).
    services: Services = request.app.state.services
    authorization = request.headers.get("authorization")
    url = services.settings.public_url.rstrip("/") + request_path(request)
    now = utcnow()

    def pending(tx: Tx) -> list[ApprovalRequest]:
        caller = app_tokens.authenticate_in(
            tx, authorization, method=request.method, url=url, audience=services.settings.public_url, now=now
        )
        assert caller.citizen.id is not None
        return approvals.pending_in(tx, caller.citizen.id, now=now)

    found = await services.answer_writer.run(pending)
    return json_response(RequestList(requests=[_out(r) for r in found]))


@router.get("/requests/{request_id}", summary="One approval request, in any state")
def get_request(request_id: str, caller: CallerDep, services: ServicesDep) -> RequestOut:
    with services.session() as session:
        return _out(approvals.for_citizen(session, caller.citizen, request_id))


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "refuse"]
    certificate: Base64Bytes | None = Field(None, description="Base64 DER certificate of the key used")
    signature: Base64Bytes | None = Field(None, description="Base64 signature over the hash")


class AnswerOut(BaseModel):
    id: str
    state: str


_ANSWER_DOC = documented(
    parameter("request_id", "path", "The approval request's id"), _APP_TOKEN, requestBody=json_body(AnswerIn)
)


@lean(
    router,
    "/requests/{request_id}",
    method="POST",
    response_model=AnswerOut,
    responses=VALIDATION_ERROR,
    summary="Approve (with a signature) or refuse a request",
    openapi_extra=_ANSWER_DOC,
)
async def answer(request: Request) -> Response:
    # The whole answer (request token, its jti, the request, certificate, OCSP, signature,
    # the conditional update) is one job of the answer writer, in a transaction it shares
    # with the answers that arrived meanwhile: one commit (one fsync) for all of them. The
    # job runs on the event loop when the write gate is free (only the commit goes to the
    # writer's thread): no thread hand-over, which cost more CPU than the answer's own
    # statements (api.group_commit; docs/benchmarks.md, ninth session). Checking on the
    # loop and writing in the thread was tried earlier: the writer then found one answer
    # waiting at a time, and one commit per answer cost more than the hop it saved. The
    # body is read here, as FastAPI would, with the same 422 for a malformed one, and the
    # path parameter and header too (``_lean``).
    services: Services = request.app.state.services
    request_id: str = request.path_params["request_id"]
    body = await json_model(request, AnswerIn)
    call = AppAnswer(
        authorization=request.headers.get("authorization"),
        method=request.method,
        url=services.settings.public_url.rstrip("/") + request_path(request),
        request_id=request_id,
        decision=body.decision,
        certificate=body.certificate,
        signature=body.signature,
        now=utcnow(),
    )
    answered = await services.answer_writer.run(lambda tx: services.answering.answer(tx, call), on_loop=True)
    return json_response(AnswerOut(id=answered.id, state=answered.state))
