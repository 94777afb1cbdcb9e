"""Endpoints the citizen app calls with its device-signed request tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from identity import app_tokens, approvals
from identity.app_tokens import AppCaller
from identity.errors import AppAuthenticationFailed, ApprovalRejected
from identity.models import ApprovalRequest
from keys.errors import ServiceError
from keys.models import utcnow

from ..deps import get_services
from ..services import Services
from ._binary import Base64Bytes, encode
from ._responses import json_response

router = APIRouter(prefix="/api/v1/app", tags=["citizen app"])
ServicesDep = Annotated[Services, Depends(get_services)]


AuthorizationHeader = Annotated[str | None, Header(description="EID-App <request token>")]


def _authenticate(
    request: Request, services: Services, session: Session, authorization: str | None, *, consume: bool
) -> AppCaller:
    return app_tokens.authenticate(
        session,
        authorization,
        method=request.method,
        url=services.settings.public_url.rstrip("/") + request.url.path,
        audience=services.settings.public_url,
        consume=consume,
    )


def app_caller(
    request: Request, services: ServicesDep, authorization: AuthorizationHeader = None
) -> AppCaller:
    with services.session() as session:
        caller = _authenticate(request, services, session, authorization, consume=True)
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


@router.get(
    "/requests", response_model=RequestList, summary="Pending approval requests of the device's citizen"
)
def list_requests(caller: CallerDep, services: ServicesDep) -> Response:
    with services.session() as session:
        pending = approvals.pending_for(session, caller.citizen)
        return json_response(RequestList(requests=[_out(r) for r in pending]))


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


@router.post(
    "/requests/{request_id}",
    response_model=AnswerOut,
    summary="Approve (with a signature) or refuse a request",
)
def answer(
    request_id: str,
    body: AnswerIn,
    request: Request,
    services: ServicesDep,
    authorization: AuthorizationHeader = None,
) -> Response:
    # The request token is checked here rather than in a dependency, in the same session as
    # the answer: its jti is recorded right before the answer's own write, so both are one
    # transaction (one commit instead of two, one thread-pool hop instead of two), and the
    # database's write lock is not held while the certificate and signature are checked.
    now = utcnow()
    with services.session() as session:
        caller = _authenticate(request, services, session, authorization, consume=False)
        used = False

        def use_token() -> None:
            nonlocal used
            if not used:
                used = True
                app_tokens.use_token(session, caller, now=now)

        try:
            if body.decision == "refuse":
                use_token()
                refused = approvals.refuse(session, caller.citizen, request_id, now=now)
                outcome = AnswerOut(id=refused.public_id, state=refused.state)
            else:
                if body.certificate is None or body.signature is None:
                    raise ApprovalRejected("an approval needs the certificate and the signature")
                checked = approvals.check_answer(
                    session,
                    caller.citizen,
                    request_id,
                    certificate=body.certificate,
                    signature=body.signature,
                    checker=services.certificate_checker,
                    now=now,
                )
                use_token()
                completed = approvals.record_answer(session, checked, now=now)
                outcome = AnswerOut(id=completed.public_id, state=completed.state)
        except AppAuthenticationFailed:
            raise
        except ServiceError:
            # A refused call uses its token up too; a replayed token is told so (401), whatever
            # else is wrong with the call.
            use_token()
            session.commit()
            raise
        return json_response(outcome)
