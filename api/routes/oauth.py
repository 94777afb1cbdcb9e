"""OAuth 2.0 endpoints served by Authlib through the adapter in ``api/oauth``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response

from ..deps import get_services
from ..oauth.server import Request as OAuthRequest
from ..services import Services

router = APIRouter(tags=["OAuth 2.0 and OpenID Connect"])
ServicesDep = Annotated[Services, Depends(get_services)]
MAX_FORM_BYTES = 64 * 1024


async def form_pairs(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body as pairs (repeats kept); an empty list for anything else."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return [("__too_large__", "1")]
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return []
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return []


def oauth_request(
    request: Request, services: Services, form: list[tuple[str, str]], db: object
) -> OAuthRequest:
    return OAuthRequest(
        method=request.method,
        uri=services.settings.public_url.rstrip("/")
        + request.url.path
        + (f"?{request.url.query}" if request.url.query else ""),
        headers=request.headers,  # case-insensitive: Authlib asks for "Authorization"
        query=list(request.query_params.multi_items()),
        form=form,
        db=db,  # type: ignore[arg-type]
    )


@router.post(
    "/oauth/token",
    summary="Token endpoint (RFC 6749)",
    openapi_extra={
        "requestBody": {
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
        }
    },
)
def token(
    request: Request, services: ServicesDep, form: Annotated[list[tuple[str, str]], Depends(form_pairs)]
) -> Response:
    with services.session() as session:
        response: Response = services.oauth.create_token_response(
            oauth_request(request, services, form, session)
        )
        # A granted request committed with its new tokens (``save_token``). One refused after
        # its code or refresh token was taken (a PKCE mismatch, say) must still use it up,
        # as when every step committed on its own.
        session.commit()
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


_FORM_BODY = {
    "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}}
}


@router.post("/oauth/revoke", summary="Token revocation (RFC 7009)", openapi_extra=_FORM_BODY)
def revoke(
    request: Request, services: ServicesDep, form: Annotated[list[tuple[str, str]], Depends(form_pairs)]
) -> Response:
    with services.session() as session:
        response: Response = services.oauth.create_endpoint_response(
            "revocation", oauth_request(request, services, form, session)
        )
    return response


@router.post("/oauth/introspect", summary="Token introspection (RFC 7662)", openapi_extra=_FORM_BODY)
def introspect(
    request: Request, services: ServicesDep, form: Annotated[list[tuple[str, str]], Depends(form_pairs)]
) -> Response:
    with services.session() as session:
        response: Response = services.oauth.create_endpoint_response(
            "introspection", oauth_request(request, services, form, session)
        )
    response.headers["Cache-Control"] = "no-store"
    return response
