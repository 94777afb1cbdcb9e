"""Enrolment endpoints used by the citizen app (docs/protocol.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from identity import enrolment

from ..deps import get_services
from ..services import Services
from ._binary import Base64Bytes, encode

router = APIRouter(prefix="/api/v1/enrolment", tags=["citizen app"])
ServicesDep = Annotated[Services, Depends(get_services)]


class CitizenOut(BaseModel):
    country: str
    personal_code: str
    given_name: str
    family_name: str


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    activation_code: str = Field(min_length=4, max_length=40)


class StartOut(BaseModel):
    enrolment_id: str
    challenge: str = Field(description="Base64, 32 bytes")
    expires_at: datetime
    citizen: CitizenOut


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_key: Base64Bytes = Field(description="Base64 DER SubjectPublicKeyInfo")
    proof: Base64Bytes = Field(description="Base64 signature over the proof-of-possession message")


class CompleteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    auth_key: KeyIn
    sign_key: KeyIn
    device_key: KeyIn


class CompleteOut(BaseModel):
    device_id: str
    auth_certificate: str
    sign_certificate: str
    chain: list[str]
    citizen: CitizenOut


def _citizen(c: object) -> CitizenOut:
    return CitizenOut.model_validate(c, from_attributes=True)


@router.post("", status_code=201, summary="Start enrolment with an activation code")
def start(body: StartIn, services: ServicesDep) -> StartOut:
    with services.session() as session:
        row, citizen = enrolment.start(session, body.activation_code)
        return StartOut(
            enrolment_id=row.public_id,
            challenge=encode(row.challenge),
            expires_at=row.expires_at,
            citizen=_citizen(citizen),
        )


@router.post("/{enrolment_id}/complete", summary="Prove possession of the keys and receive certificates")
def complete(enrolment_id: str, body: CompleteIn, services: ServicesDep) -> CompleteOut:
    def key(k: KeyIn) -> enrolment.KeySubmission:
        return enrolment.KeySubmission(public_key=k.public_key, proof=k.proof)

    with services.session() as session:
        result = enrolment.complete(
            session,
            services.keystore,
            services.pki,
            enrolment_id,
            auth=key(body.auth_key),
            sign=key(body.sign_key),
            device=key(body.device_key),
        )
        return CompleteOut(
            device_id=result.device_id,
            auth_certificate=encode(result.auth_certificate),
            sign_certificate=encode(result.sign_certificate),
            chain=[encode(c) for c in result.chain],
            citizen=_citizen(result.citizen),
        )
