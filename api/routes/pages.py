"""Pages for people: the landing page, the citizen portal and its login, the signing page.

They read the same domain functions as the JSON APIs and render them; every change (a
suspended certificate, a withdrawn consent, a signature) goes through the JSON APIs from
the page's script, so there is one implementation of each rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from identity import authentication
from identity.authentication import AuthenticatedIdentity
from identity.citizens import recent_activity
from identity.enrolment import citizen_certificates
from identity.models import Citizen
from identity.oauth import clients, grants
from keys.ca import CertState
from keys.models import CertificateRecord, as_utc, utcnow

from .. import cookies, envelopes, i18n
from ..deps import get_services
from ..envelopes import EnvelopeNotFound, Principal
from ..pages import local_path, render
from ..services import Services
from .envelopes import EnvelopeOut, _envelope_out

router = APIRouter(tags=["pages"], include_in_schema=False)
ServicesDep = Annotated[Services, Depends(get_services)]


@router.get("/", response_class=HTMLResponse)
def landing(request: Request) -> Response:
    return render("landing.html", {}, request=request)


def _identity(request: Request, services: Services) -> AuthenticatedIdentity | None:
    with services.session() as db:
        return authentication.session_identity(db, request.cookies.get(cookies.SESSION))


def _to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/portal/login?next=" + quote(here, safe=""), status_code=303)


@router.get("/portal/login", response_class=HTMLResponse)
def portal_login(request: Request, services: ServicesDep) -> Response:
    """The portal's own login (no relying party): the app or a card, then ``next``."""
    target = local_path(request.query_params.get("next"), "/portal")
    if _identity(request, services) is not None:
        return RedirectResponse(target, status_code=303)
    t = i18n.Translator(i18n.choose(request))
    return render(
        "login.html",
        {
            "client_name": t("portal.service_name"),
            "next_url": target,
            "login_hint": "",
            "methods": ["app", "card"],
        },
        request=request,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateView:
    """One certificate as the portal shows it."""

    serial: str
    """Hex serial, the key of the self-service API."""
    purpose: str
    """``authentication`` or ``signing``."""
    state_key: str
    """``valid``, ``suspended``, ``revoked`` or ``expired``."""
    not_before: datetime
    """Start of validity."""
    not_after: datetime
    """End of validity."""
    revoked_at: datetime | None
    """When it was revoked or suspended."""


def _certificate_view(record: CertificateRecord, now: datetime) -> CertificateView:
    if record.state == CertState.REVOKED.value:
        state = "suspended" if record.revocation_reason == "certificate_hold" else "revoked"
    elif as_utc(record.not_after) <= now:
        state = "expired"
    else:
        state = "valid"
    return CertificateView(
        serial=record.serial,
        purpose="authentication" if record.profile == "citizen-auth" else "signing",
        state_key=state,
        not_before=record.not_before,
        not_after=record.not_after,
        revoked_at=record.revoked_at,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentView:
    """A service the citizen allowed to receive their data."""

    client_id: str
    """Key of the withdrawal API."""
    client_name: str
    """The service's registered name."""
    scope: str
    """Space-separated scopes allowed."""
    granted_at: datetime
    """When the consent was given."""


@router.get("/portal", response_class=HTMLResponse)
def portal(request: Request, services: ServicesDep) -> Response:
    identity = _identity(request, services)
    if identity is None:
        return _to_login(request)
    now = utcnow()
    principal = Principal(citizen_id=identity.citizen_id)
    with services.session() as db:
        citizen = db.get(Citizen, identity.citizen_id)
        assert citizen is not None
        certificates = [
            _certificate_view(record, now)
            for record in citizen_certificates(db, citizen)
            if record.state != CertState.RESERVED.value
        ]
        consents = []
        for consent in grants.consents_of(db, identity.citizen_id):
            client = clients.find(db, consent.client_id)
            consents.append(
                ConsentView(
                    client_id=consent.client_id,
                    client_name=client.row.name if client else "-",
                    scope=consent.scope,
                    granted_at=consent.granted_at,
                )
            )
        activity = recent_activity(db, identity.citizen_id, limit=20)
        listed = [_envelope_out(db, row, principal) for row in envelopes.visible_to(db, principal)]
    return render(
        "portal.html",
        {
            "identity": identity,
            "certificates": certificates,
            "consents": consents,
            "activity": activity,
            "envelopes": listed,
        },
        request=request,
    )


@router.get("/sign", response_class=HTMLResponse)
def sign_page(request: Request, services: ServicesDep) -> Response:
    """Sign your own PDF, or (``?envelope=ID``) your turn on an envelope."""
    identity = _identity(request, services)
    if identity is None:
        return _to_login(request)
    envelope: EnvelopeOut | None = None
    envelope_id = request.query_params.get("envelope")
    if envelope_id:
        principal = Principal(citizen_id=identity.citizen_id)
        try:
            with services.session() as db:
                envelope = _envelope_out(db, envelopes.find(db, envelope_id[:64], principal), principal)
        except EnvelopeNotFound:
            t = i18n.Translator(i18n.choose(request))
            return render(
                "error.html",
                {
                    "title": t("error.envelope_not_found.title"),
                    "detail": t("error.envelope_not_found.detail"),
                    "advice": t("error.envelope_not_found.advice"),
                },
                status=404,
                request=request,
            )
    limit = services.settings.limits.document_bytes
    returned = request.query_params.get("return")
    return render(
        "sign.html",
        {
            "envelope": envelope,
            "return_url": local_path(returned, "") if returned else None,
            "limit_bytes": limit,
            "limit_mb": max(1, limit // (1024 * 1024)),
        },
        request=request,
    )
