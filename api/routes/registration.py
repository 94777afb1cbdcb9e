"""Dynamic client registration (RFC 7591) and client management (RFC 7592).

Closed unless ``EID_OIDC__DYNAMIC_REGISTRATION`` is on. The JSON body is read here
(at most 64 KiB) and handed to Authlib's registration endpoints (``api/oauth/registration.py``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from authlib.oauth2.rfc6749.errors import OAuth2Error
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from ..deps import get_services
from ..oauth import registration
from ..services import Services
from .oidc import metadata

router = APIRouter(tags=["OAuth 2.0 and OpenID Connect"])
ServicesDep = Annotated[Services, Depends(get_services)]


async def json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > 64 * 1024:
        return None
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


JsonDep = Annotated[Any, Depends(json_body)]


def _registration_response(
    services: Services, request: Request, data: Any, endpoint: str, client_id: str | None
) -> Response:
    if not services.settings.oidc.dynamic_registration:
        return JSONResponse(
            {"error": "access_denied", "error_description": "registration is closed"}, status_code=403
        )
    if request.method in ("POST", "PUT") and not isinstance(data, dict):
        return JSONResponse(
            {"error": "invalid_client_metadata", "error_description": "the body must be a JSON object"},
            status_code=400,
        )
    registration.set_server_metadata(metadata(services))
    with services.session() as db:
        jreq = registration.JsonRequest(
            method=request.method, uri=str(request.url), headers=request.headers, data=data or {}, db=db
        )
        jreq.client_id_in_path = client_id  # type: ignore[attr-defined]
        handler = (
            registration.Registration(services.oauth)
            if endpoint == "register"
            else registration.Configuration(services.oauth)
        )
        try:
            status, body, headers = (
                handler.create_registration_response(jreq)
                if endpoint == "register"
                else handler.create_configuration_response(jreq)
            )
        except OAuth2Error as error:
            status, body, headers = error()
        response = services.oauth.handle_response(status, body, headers)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/oauth/register", status_code=201, summary="Dynamic client registration (RFC 7591)")
def register_client(request: Request, services: ServicesDep, data: JsonDep) -> Response:
    return _registration_response(services, request, data, "register", None)


@router.get("/oauth/register/{client_id}", summary="Read a registration (RFC 7592)")
def read_client(client_id: str, request: Request, services: ServicesDep) -> Response:
    return _registration_response(services, request, None, "configure", client_id)


@router.put("/oauth/register/{client_id}", summary="Update a registration (RFC 7592)")
def update_client(client_id: str, request: Request, services: ServicesDep, data: JsonDep) -> Response:
    return _registration_response(services, request, data, "configure", client_id)


@router.delete("/oauth/register/{client_id}", status_code=204, summary="Delete a registration (RFC 7592)")
def delete_client(client_id: str, request: Request, services: ServicesDep) -> Response:
    return _registration_response(services, request, None, "configure", client_id)
