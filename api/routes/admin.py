"""The admin API for registration officers' systems: OAuth2 client credentials, scope ``admin``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field

from identity import citizens
from identity.oauth.tokens import TokenInfo, check_bearer

from ..deps import get_services
from ..services import Services

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
ServicesDep = Annotated[Services, Depends(get_services)]


def admin_token(
    services: ServicesDep,
    authorization: Annotated[str | None, Header(description="Bearer <access token>")] = None,
) -> TokenInfo:
    with services.session() as session:
        return check_bearer(session, authorization, scope="admin")


AdminDep = Annotated[TokenInfo, Depends(admin_token)]


class CitizenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id_code: str = Field(min_length=1, max_length=32, description="Personal code")
    given_name: str = Field(min_length=1, max_length=200)
    family_name: str = Field(min_length=1, max_length=200)
    country: str = Field("EE", min_length=2, max_length=2)


class CitizenOut(BaseModel):
    id: str
    country: str
    personal_code: str
    given_name: str
    family_name: str
    state: str


class RegistrationOut(BaseModel):
    activation_code: str
    expires_at: datetime
    citizen: CitizenOut


def _citizen(row: object) -> CitizenOut:
    return CitizenOut(
        id=row.public_id,  # type: ignore[attr-defined]
        country=row.country,  # type: ignore[attr-defined]
        personal_code=row.personal_code,  # type: ignore[attr-defined]
        given_name=row.given_name,  # type: ignore[attr-defined]
        family_name=row.family_name,  # type: ignore[attr-defined]
        state=row.state,  # type: ignore[attr-defined]
    )


@router.post("/citizens", status_code=201, summary="Register a citizen; returns the one-time activation code")
def register_citizen(body: CitizenIn, token: AdminDep, services: ServicesDep) -> RegistrationOut:
    with services.session() as session:
        registration = citizens.register(
            session,
            personal_code=body.id_code,
            given_name=body.given_name,
            family_name=body.family_name,
            country=body.country,
            actor=f"client {token.client_id}",
        )
        return RegistrationOut(
            activation_code=registration.activation_code,
            expires_at=registration.expires_at,
            citizen=_citizen(registration.citizen),
        )


@router.post(
    "/citizens/{country}/{id_code}/activation-code", status_code=201, summary="A new activation code"
)
def new_activation_code(
    country: str, id_code: str, token: AdminDep, services: ServicesDep
) -> RegistrationOut:
    with services.session() as session:
        registration = citizens.issue_activation_code(
            session, citizens.find(session, id_code, country), actor=f"client {token.client_id}"
        )
        return RegistrationOut(
            activation_code=registration.activation_code,
            expires_at=registration.expires_at,
            citizen=_citizen(registration.citizen),
        )


@router.get("/citizens/{country}/{id_code}", summary="One citizen")
def get_citizen(country: str, id_code: str, token: AdminDep, services: ServicesDep) -> CitizenOut:
    with services.session() as session:
        return _citizen(citizens.find(session, id_code, country))
