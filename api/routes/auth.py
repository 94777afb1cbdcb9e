"""Browser-side authentication: with the citizen app, or with a card via Web eID."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from identity import approvals, authentication
from identity.authentication import AuthenticatedIdentity
from identity.models import ApprovalRequest
from identity.web_eid import validate_auth_token
from keys.dbapi import Tx
from keys.models import utcnow

from .. import cookies
from ..deps import get_services
from ..services import Services
from ._lean import VALIDATION_ERROR, documented, json_body, json_model, lean, parameter, with_cookies
from ._responses import json_response

router = APIRouter(prefix="/api/v1/auth", tags=["authentication"])
ServicesDep = Annotated[Services, Depends(get_services)]


class IdentityOut(BaseModel):
    sub: str = Field(description="TARA-compatible subject, e.g. EE38001085718")
    personal_code: str
    country: str
    given_name: str
    family_name: str
    birth_date: date | None
    amr: list[str]
    acr: str
    auth_time: datetime
    method: str


def identity_out(identity: AuthenticatedIdentity) -> IdentityOut:
    return IdentityOut(
        sub=identity.personal_code.subject,
        personal_code=identity.personal_code.code,
        country=identity.personal_code.country,
        given_name=identity.given_name,
        family_name=identity.family_name,
        birth_date=identity.birth_date,
        amr=list(identity.amr),
        acr=identity.acr,
        auth_time=identity.auth_time,
        method=identity.method,
    )


class AppStartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    personal_code: str = Field(min_length=1, max_length=32)
    country: str = Field("EE", min_length=2, max_length=2)


class AppStartOut(BaseModel):
    request_id: str
    verification_code: str
    expires_at: datetime


@lean(
    router,
    "/app",
    method="POST",
    status_code=201,
    response_model=AppStartOut,
    responses=VALIDATION_ERROR,
    summary="Start a login with the citizen app",
    openapi_extra=documented(requestBody=json_body(AppStartIn)),
)
async def start_app(request: Request) -> Response:
    # A lean route (``_lean``: the body read here, with FastAPI's 422 for a malformed one),
    # its database work one job of the app writer (``api.group_commit``): the citizen read
    # and the new request share a commit with other app and login calls, and no
    # thread-pool hop. Likewise the poll below.
    services: Services = request.app.state.services
    body = await json_model(request, AppStartIn)
    cookie_jar = Response()
    binding = cookies.binding(request, cookie_jar, services.settings)
    row = await services.answer_writer.run(
        lambda tx: authentication.start_app_login(
            tx,
            personal_code=body.personal_code,
            country=body.country,
            relying_party="the e-ID portal",
            binding=binding,
        )
    )
    out = AppStartOut(
        request_id=row.public_id, verification_code=row.verification_code, expires_at=row.expires_at
    )
    return with_cookies(json_response(out, 201), cookie_jar)


class AppStatusOut(BaseModel):
    state: str
    reason: str | None = None
    identity: IdentityOut | None = None


@lean(
    router,
    "/app/{request_id}",
    method="GET",
    response_model=AppStatusOut,
    summary="Poll a login started in this browser",
    openapi_extra=documented(parameter("request_id", "path", "The login's approval request id")),
)
async def poll_app(request: Request) -> Response:
    services: Services = request.app.state.services
    request_id: str = request.path_params["request_id"]
    binding = request.cookies.get(cookies.BINDING)

    def poll(tx: Tx) -> tuple[ApprovalRequest, AuthenticatedIdentity | None, str | None]:
        # The result is taken and the login session opened in one transaction.
        row = approvals.for_browser(tx, request_id, binding)
        identity = authentication.finish_app_login(tx, row)
        token = authentication.open_session(tx, identity) if identity is not None else None
        return row, identity, token

    row, identity, token = await services.answer_writer.run(poll)
    out = AppStatusOut(state=row.state, reason=row.failure_reason)
    if identity is None or token is None:
        return json_response(out)
    out.identity = identity_out(identity)
    response = json_response(out)
    cookies.set_session(response, token, services.settings)
    return response


class ChallengeOut(BaseModel):
    nonce: str


@router.get("/web-eid/challenge", summary="A nonce for the Web eID card to sign")
def web_eid_challenge(request: Request, response: Response, services: ServicesDep) -> ChallengeOut:
    binding = cookies.binding(request, response, services.settings)
    with services.session() as session:
        return ChallengeOut(nonce=authentication.issue_web_eid_nonce(session, binding=binding))


class WebEidLoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    auth_token: dict[str, Any]
    nonce: str = Field(min_length=43, max_length=128)


@router.post("/web-eid/login", summary="Log in with a Web eID authentication token")
def web_eid_login(
    body: WebEidLoginIn, request: Request, response: Response, services: ServicesDep
) -> IdentityOut:
    now = utcnow()
    with services.session() as session:
        authentication.consume_web_eid_nonce(
            session, body.nonce, binding=request.cookies.get(cookies.BINDING), now=now
        )
        validated = validate_auth_token(
            body.auth_token,
            origin=services.origin,
            nonce=body.nonce,
            trust_anchors=services.trust.anchors,
            intermediates=services.trust.intermediates,
            check_revocation=services.revocation_check,
            now=now,
        )
        identity = authentication.card_identity(session, validated, now=now)
        token = authentication.open_session(Tx(session), identity)
        session.commit()
        cookies.set_session(response, token, services.settings)
        return identity_out(identity)


@router.post("/logout", status_code=204, summary="End this browser's login session")
def logout(request: Request, response: Response, services: ServicesDep) -> Response:
    with services.session() as session:
        authentication.end_session(session, request.cookies.get(cookies.SESSION))
    cookies.clear_session(response)
    response.status_code = 204
    return response
