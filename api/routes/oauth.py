"""OAuth 2.0 endpoints served by Authlib through the adapter in ``api/oauth``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from fastapi import APIRouter, Depends, Request, Response

from keys.dbapi import Tx

from ..deps import get_services
from ..oauth.form import MAX_FORM_BYTES, MalformedForm, is_form, parse_form
from ..oauth.server import Request as OAuthRequest
from ..oauth.threads import in_thread
from ..services import Services
from ._lean import lean

router = APIRouter(tags=["OAuth 2.0 and OpenID Connect"])
ServicesDep = Annotated[Services, Depends(get_services)]


async def form_pairs(request: Request) -> list[tuple[str, str]]:
    """The urlencoded body as pairs (repeats kept); an empty list for anything else.

    Lenient (``parse_qsl``), for the endpoints browsers post to; the token endpoint reads
    its body with the strict ``parse_form``."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return [("__too_large__", "1")]
    if not is_form(request.headers.get("content-type")):
        return []
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return []


def oauth_request(
    request: Request, services: Services, form: list[tuple[str, str]], db: object, tx: Tx | None = None
) -> OAuthRequest:
    query: bytes = request.scope.get("query_string", b"")
    return OAuthRequest(
        method=request.method,
        uri=services.issuer + request.scope["path"] + (f"?{query.decode('latin-1')}" if query else ""),
        headers=request.headers,  # case-insensitive: Authlib asks for "Authorization"
        query=list(request.query_params.multi_items()) if query else [],
        form=form,
        db=db,  # type: ignore[arg-type]
        tx=tx,
    )


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@lean(
    router,
    "/oauth/token",
    method="POST",
    summary="Token endpoint (RFC 6749)",
    openapi_extra={
        "requestBody": {
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
        }
    },
)
async def token(request: Request) -> Response:
    # async, without dependencies, one hop to the thread pool for Authlib (synchronous) and
    # the database: FastAPI's dependency resolution and a second hop cost as much as a grant.
    services: Services = request.app.state.services
    body = await request.body()
    try:
        form = parse_form(body) if is_form(request.headers.get("content-type")) else []
        if len({name for name, _ in form}) != len(form):
            # RFC 6749 §3.2: parameters MUST NOT be included more than once (Authlib checks
            # this at the authorization endpoint only).
            raise MalformedForm("a parameter is repeated")
    except MalformedForm as exc:
        error = InvalidRequestError(description=str(exc))
        return _no_store(services.oauth.handle_error_response(None, error))
    if _groupable(form):
        return await services.token_writer.run(lambda tx: _grant(request, services, form, tx))
    return await in_thread(_token, request, services, form)


def _groupable(form: list[tuple[str, str]]) -> bool:
    """A refresh grant or a code exchange whose client authenticates with a secret (or
    none): its writes are a few prepared statements on the request's ``Tx`` (the token or
    code taken, the new tokens, or a reused grant's revocation) and nothing commits on its
    own, so it can share a transaction and a commit with others (``api.group_commit``).
    ``private_key_jwt`` records its assertion's ``jti`` with a commit of its own, and the
    client credentials grant uses the ORM session; those keep a transaction each."""
    names = {name for name, _ in form}
    grant = dict(form).get("grant_type")
    return grant in ("refresh_token", "authorization_code") and "client_assertion" not in names


def _grant(request: Request, services: Services, form: list[tuple[str, str]], tx: Tx) -> Response:
    response: Response = services.oauth.create_token_response(
        oauth_request(request, services, form, None, tx)
    )
    return _no_store(response)


def _token(request: Request, services: Services, form: list[tuple[str, str]]) -> Response:
    # The DBAPI connection itself (no ORM session unless a step needs one): the refresh
    # grant's statements are prepared (``keys.dbapi``).
    with Tx.open(services.engine) as tx:
        response: Response = services.oauth.create_token_response(
            oauth_request(request, services, form, None, tx)
        )
        # A granted request committed with its new tokens (``save_token``). One refused after
        # its code or refresh token was taken (a PKCE mismatch, say) must still use it up,
        # as when every step committed on its own.
        tx.commit()
    return _no_store(response)


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
