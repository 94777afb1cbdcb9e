"""The logged-in citizen's own account (self-service)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from identity import authentication, self_service
from identity.authentication import AuthenticatedIdentity
from identity.citizens import recent_activity
from identity.enrolment import citizen_certificates
from identity.errors import IdentityError
from identity.models import Citizen
from keys.models import CertificateRecord

from .. import cookies
from ..deps import get_services
from ..services import Services
from .auth import IdentityOut, identity_out

router = APIRouter(prefix="/api/v1/me", tags=["citizen self-service"])
ServicesDep = Annotated[Services, Depends(get_services)]


class NotLoggedIn(IdentityError):
    status = 401
    public = True
    slug = "not-logged-in"
    title = "Not logged in"


def current_identity(request: Request, services: ServicesDep) -> AuthenticatedIdentity:
    with services.session() as session:
        identity = authentication.session_identity(session, request.cookies.get(cookies.SESSION))
    if identity is None:
        raise NotLoggedIn("log in first")
    return identity


IdentityDep = Annotated[AuthenticatedIdentity, Depends(current_identity)]


class ConsentNotFound(IdentityError):
    status = 404
    public = True
    slug = "consent-not-found"
    title = "Consent not found"


class CertificateOut(BaseModel):
    serial: str
    purpose: Literal["authentication", "signing"]
    state: str
    suspended: bool
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None
    revocation_reason: str | None


def _cert(record: CertificateRecord) -> CertificateOut:
    return CertificateOut(
        serial=record.serial,
        purpose="authentication" if record.profile == "citizen-auth" else "signing",
        state=record.state,
        suspended=record.revocation_reason == "certificate_hold",
        not_before=record.not_before,
        not_after=record.not_after,
        revoked_at=record.revoked_at,
        revocation_reason=record.revocation_reason,
    )


@router.get("", summary="Who is logged in")
def me(identity: IdentityDep) -> IdentityOut:
    return identity_out(identity)


@router.get("/certificates", summary="My certificates")
def certificates(identity: IdentityDep, services: ServicesDep) -> list[CertificateOut]:
    with services.session() as session:
        citizen = session.get(Citizen, identity.citizen_id)
        assert citizen is not None
        return [_cert(r) for r in citizen_certificates(session, citizen)]


@router.post("/certificates/{serial}/{action}", summary="Suspend, resume or revoke one of my certificates")
def change(
    serial: str, action: Literal["suspend", "resume", "revoke"], identity: IdentityDep, services: ServicesDep
) -> CertificateOut:
    with services.session() as session:
        citizen = session.get(Citizen, identity.citizen_id)
        assert citizen is not None
        record = self_service.change_certificate(
            session, services.keystore, services.pki, citizen, serial, action
        )
        return _cert(record)


class ActivityOut(BaseModel):
    at: datetime
    kind: str
    summary: str


@router.get("/activity", summary="My recent logins, signatures and changes")
def activity(identity: IdentityDep, services: ServicesDep) -> list[ActivityOut]:
    with services.session() as session:
        return [
            ActivityOut(at=a.at, kind=a.kind, summary=a.summary)
            for a in recent_activity(session, identity.citizen_id)
        ]


class ConsentOut(BaseModel):
    client_id: str
    client_name: str
    scope: str
    granted_at: datetime


@router.get("/consents", summary="Services I allowed to receive my data")
def consents(identity: IdentityDep, services: ServicesDep) -> list[ConsentOut]:
    from identity.oauth import clients, grants

    with services.session() as session:
        result = []
        for consent in grants.consents_of(session, identity.citizen_id):
            client = clients.find(session, consent.client_id)
            result.append(
                ConsentOut(
                    client_id=consent.client_id,
                    client_name=client.row.name if client else "(removed service)",
                    scope=consent.scope,
                    granted_at=consent.granted_at,
                )
            )
        return result


@router.delete(
    "/consents/{client_id}", status_code=204, summary="Withdraw my consent (and the service's tokens)"
)
def withdraw(client_id: str, identity: IdentityDep, services: ServicesDep) -> None:
    from identity.oauth import grants

    with services.session() as session:
        if grants.withdraw_consent(session, identity.citizen_id, client_id) == 0:
            raise ConsentNotFound("you have given no consent to that service")
