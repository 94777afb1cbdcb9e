"""OpenID Connect: discovery, JWKS, authorization, userinfo.

The authorization endpoint first checks the client and the redirect URI itself: when
either is wrong, the citizen sees an error page and nothing is redirected. Everything
else is Authlib's validation; its errors go back to the client's redirect URI with
``state`` and ``iss``. When the citizen must log in or consent, the request is parked in
the database and resumed afterwards, on whichever instance the browser reaches.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import jwt
from authlib.oauth2.rfc6749.errors import OAuth2Error
from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlmodel import Session

from identity import authentication
from identity.authentication import AuthenticatedIdentity
from identity.oauth import claims, clients, grants, logout, parked
from identity.oauth.grants import Owner
from identity.oauth.tokens import InvalidToken, check_bearer
from keys.dbapi import Tx
from keys.models import utcnow

from .. import cookies, i18n
from ..deps import get_services
from ..oauth.server import Request as OAuthRequest
from ..oauth.threads import in_thread
from ..pages import render
from ..services import Services
from ._lean import documented, lean, parameter
from .oauth import form_pairs

router = APIRouter(tags=["OAuth 2.0 and OpenID Connect"])
ServicesDep = Annotated[Services, Depends(get_services)]
FormDep = Annotated[list[tuple[str, str]], Depends(form_pairs)]
UNSUPPORTED = {"request": "request_not_supported", "request_uri": "request_uri_not_supported"}


# Discovery and keys.


def metadata(services: Services) -> dict[str, Any]:
    base = services.issuer
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "userinfo_endpoint": f"{base}/oauth/userinfo",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "end_session_endpoint": f"{base}/oauth/logout",
        "registration_endpoint": f"{base}/oauth/register",
        "pushed_authorization_request_endpoint": f"{base}/oauth/par",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "introspection_endpoint": f"{base}/oauth/introspect",
        "jwks_uri": f"{base}/oauth/jwks",
        "scopes_supported": ["openid", "profile", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "PS256", "ES384"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "sid",
            "at_hash",
            *claims.PROFILE_CLAIMS,
        ],
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "acr_values_supported": list(claims.ACR_ORDER),
        "ui_locales_supported": ["et", "en"],
        "claims_locales_supported": ["et", "en"],
        "display_values_supported": ["page", "popup", "touch"],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": True,
    }


@router.get("/.well-known/openid-configuration", summary="OpenID Connect Discovery")
def openid_configuration(services: ServicesDep) -> JSONResponse:
    return JSONResponse(metadata(services), headers={"Cache-Control": "max-age=300, public"})


@router.get("/.well-known/oauth-authorization-server", summary="RFC 8414 metadata")
def oauth_metadata(services: ServicesDep) -> JSONResponse:
    return JSONResponse(metadata(services), headers={"Cache-Control": "max-age=300, public"})


@router.get("/oauth/jwks", summary="Public keys that sign tokens (JWKS)")
def jwks(services: ServicesDep) -> JSONResponse:
    keys = [key.jwk for key in services.key_ring.published()]
    return JSONResponse({"keys": keys}, headers={"Cache-Control": "max-age=300, public"})


# Authorization.


def _error_page(request: Request, key: str, status: int = 400) -> HTMLResponse:
    """A page for people (never a redirect): ``key`` names the title and text in ``api/i18n``."""
    t = i18n.Translator(i18n.choose(request))
    return render(
        "error.html",
        {"title": t(f"error.{key}.title"), "detail": t(f"error.{key}.detail"), "advice": None},
        status=status,
        request=request,
    )


def _redirect_error(
    services: Services, redirect_uri: str, error: str, description: str, state: str | None
) -> Response:
    params = {"error": error, "error_description": description, "iss": services.issuer}
    if state is not None:
        params["state"] = state
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=303)


def _usable_identity(
    db: Session,
    services: Services,
    request: Request,
    data: dict[str, str],
    since: parked.Parked | None,
) -> AuthenticatedIdentity | None:
    """The browser's login, if it is fresh and strong enough for this request."""
    identity = authentication.session_identity(db, request.cookies.get(cookies.SESSION))
    if identity is None:
        return None
    now = utcnow()
    age = now - identity.auth_time
    # A login made after this request was parked is fresh enough for it, whatever max_age says
    # (max_age=0 means "log in again", like prompt=login).
    fresh = since is not None and identity.auth_time >= since.created_at
    if age > timedelta(minutes=services.settings.oidc.sso_minutes) and not fresh:
        return None
    max_age = data.get("max_age")
    if max_age is not None and max_age.isdigit() and age > timedelta(seconds=int(max_age)) and not fresh:
        return None
    if not claims.satisfies(identity.acr, data.get("acr_values", "").split()):
        return None
    if "login" in data.get("prompt", "").split() and (since is None or identity.auth_time < since.created_at):
        return None
    hint = data.get("id_token_hint")
    if hint and _hint_subject(services, hint) != identity.personal_code.subject:
        return None
    return identity


def _hint_subject(services: Services, hint: str) -> str | None:
    """``sub`` of an ID token we issued (expired ones too), or None."""
    verified = _hint_claims(services, hint) or {}
    sub = verified.get("sub")
    return sub if isinstance(sub, str) else None


def _owner(identity: AuthenticatedIdentity) -> Owner:
    return Owner(
        citizen_id=identity.citizen_id,
        sid=identity.session_id or "unknown",
        auth_time=identity.auth_time,
        acr=identity.acr,
        amr=identity.amr,
    )


PAR_PREFIX = "urn:ietf:params:oauth:request_uri:"
PAR_LIFETIME = 60


def _pushed(db: Session, pairs: list[tuple[str, str]]) -> list[tuple[str, str]] | None:
    """Swap a pushed request's ``request_uri`` for its parameters (RFC 9126); single use."""
    data = dict(pairs)
    uri = data.get("request_uri", "")
    if not uri.startswith(PAR_PREFIX):
        return pairs
    row = parked.find(db, uri[len(PAR_PREFIX) :])
    if row is None or row.client_id != data.get("client_id") or not parked.complete(db, row):
        return None
    return parked.params(row)


def authorize_pairs(
    request: Request,
    services: Services,
    pairs: list[tuple[str, str]],
    *,
    since: parked.Parked | None,
    posted: bool,
) -> Response:
    with services.session() as db:
        if since is None:
            pushed = _pushed(db, pairs)
            if pushed is None:
                return _error_page(request, "par_unknown")
            pairs = pushed
        oreq = OAuthRequest(
            method="GET",
            uri=services.issuer + "/oauth/authorize",
            headers=request.headers,
            query=pairs,
            form=[],
            db=db,
        )
        data = oreq.payload.data
        client = clients.lookup(oreq.tx, data.get("client_id"))
        if client is None:
            return _error_page(request, "unknown_client")
        redirect_uri = data.get("redirect_uri")
        if redirect_uri is None:
            redirect_uri = client.get_default_redirect_uri()
            if redirect_uri is None:
                return _error_page(request, "no_redirect")
        elif not client.check_redirect_uri(redirect_uri):
            return _error_page(request, "bad_redirect")
        state = data.get("state")
        for name, error in UNSUPPORTED.items():
            if name in data:
                return _redirect_error(
                    services, redirect_uri, error, f"the '{name}' parameter is not supported", state
                )
        if "claims" in data:
            try:
                requested = json.loads(data["claims"])
                if not isinstance(requested, dict) or any(
                    not isinstance(requested.get(member, {}), dict) for member in ("id_token", "userinfo")
                ):
                    raise ValueError
            except ValueError:
                return _redirect_error(
                    services,
                    redirect_uri,
                    "invalid_request",
                    "claims must be a JSON object whose id_token and userinfo members are objects",
                    state,
                )
        identity = _usable_identity(db, services, request, data, since)
        owner = _owner(identity) if identity else None
        try:
            grant = services.oauth.get_consent_grant(oreq, end_user=owner)
        except OAuth2Error as error:
            return _redirect_error(
                services, redirect_uri, error.error, error.description or error.error, state
            )
        if owner is None:
            parked_request = since or parked.park(db, client.client_id, pairs)
            return RedirectResponse(f"/login?request={parked_request.public_id}", status_code=303)
        scope = client.get_allowed_scope(data.get("scope", ""))
        if not client.row.first_party and not grants.has_consent(
            db, owner.citizen_id, client.client_id, scope
        ):
            if "none" in data.get("prompt", "").split():
                return _redirect_error(
                    services, redirect_uri, "consent_required", "the citizen has not consented", state
                )
            parked_request = since or parked.park(db, client.client_id, pairs)
            return RedirectResponse(f"/consent?request={parked_request.public_id}", status_code=303)
        # Completed with the code's commit (``save_code``), or with the one below when no code is made.
        if since is not None and not parked.complete(db, since, commit=False):
            return _error_page(request, "already_done")
        oreq.requested_claims = json.loads(data["claims"]) if "claims" in data else None
        response: Response = services.oauth.create_authorization_response(oreq, grant_user=owner, grant=grant)
        db.commit()
        location = response.headers.get("location")
        if location:  # RFC 9207: say who we are in every authorization response
            response.headers["location"] = (
                location + ("&" if "?" in location else "?") + urlencode({"iss": services.issuer})
            )
        if posted or since is not None:
            response.status_code = 303
        return response


# The login's pages (authorize, login, resume) are async routes with one hop to the
# OAuth threads (``api.oauth.threads``) for Authlib and the database: FastAPI's dependency
# resolution and its anyio thread pool cost a login's eight requests more than their work.


@lean(
    router,
    "/oauth/authorize",
    method="GET",
    summary="Authorization endpoint (GET)",
    response_class=HTMLResponse,
)
async def authorize_get(request: Request) -> Response:
    services: Services = request.app.state.services
    pairs = list(request.query_params.multi_items())
    return await in_thread(authorize_pairs, request, services, pairs, since=None, posted=False)


@router.post("/oauth/authorize", summary="Authorization endpoint (POST)", response_class=HTMLResponse)
def authorize_post(request: Request, services: ServicesDep, form: FormDep) -> Response:
    return authorize_pairs(request, services, form, since=None, posted=True)


_PARKED_REQUEST = documented(parameter("request", "query", "The parked authorization request's id"))


@lean(
    router,
    "/oauth/authorize/resume",
    method="GET",
    summary="Continue a parked authorization request",
    response_class=HTMLResponse,
    openapi_extra=_PARKED_REQUEST,
)
async def authorize_resume(request: Request) -> Response:
    return await in_thread(_resume, request, request.app.state.services)


def _resume(request: Request, services: Services) -> Response:
    with services.session() as db:
        row = parked.find(db, request.query_params.get("request"))
    if row is None:
        return _error_page(request, "login_expired")
    return authorize_pairs(request, services, parked.params(row), since=row, posted=False)


# Consent.


@router.get("/consent", summary="What the service will receive", response_class=HTMLResponse)
def consent_page(request: Request, services: ServicesDep) -> Response:
    with services.session() as db:
        row = parked.find(db, request.query_params.get("request"))
        if row is None:
            return _error_page(request, "login_expired")
        client = clients.find(db, row.client_id)
        assert client is not None
        data = dict(parked.params(row))
        scope = client.get_allowed_scope(data.get("scope", ""))
    return render(
        "consent.html",
        {"client_name": client.row.name, "scopes": scope.split(), "request_id": row.public_id},
        request=request,
        ui_locales=data.get("ui_locales"),
    )


@router.post("/consent", summary="Allow or deny", response_class=HTMLResponse)
def consent_decide(
    request: Request,
    services: ServicesDep,
    request_id: Annotated[str, Form(alias="request", max_length=40)],
    decision: Annotated[str, Form(max_length=10)],
) -> Response:
    with services.session() as db:
        row = parked.find(db, request_id)
        identity = authentication.session_identity(db, request.cookies.get(cookies.SESSION))
        if row is None or identity is None:
            return _error_page(request, "login_expired")
        data = dict(parked.params(row))
        client = clients.find(db, row.client_id)
        assert client is not None
        redirect_uri = data.get("redirect_uri") or client.get_default_redirect_uri() or ""
        if decision != "allow":
            parked.complete(db, row)
            return _redirect_error(
                services, redirect_uri, "access_denied", "the citizen did not allow it", data.get("state")
            )
        grants.give_consent(
            db, identity.citizen_id, client.client_id, client.get_allowed_scope(data.get("scope", ""))
        )
        resume = f"/oauth/authorize/resume?request={row.public_id}"
    return RedirectResponse(resume, status_code=303)


# Login page (the flows themselves are the /api/v1/auth endpoints).


@lean(
    router,
    "/login",
    method="GET",
    summary="Log in",
    response_class=HTMLResponse,
    openapi_extra=_PARKED_REQUEST,
)
async def login_page(request: Request) -> Response:
    return await in_thread(_login_page, request, request.app.state.services)


def _login_page(request: Request, services: Services) -> Response:
    with services.session() as db:
        row = parked.find(db, request.query_params.get("request"))
        if row is None:
            return _error_page(request, "login_expired")
        data = dict(parked.params(row))
        client = clients.lookup(Tx(db), row.client_id)
        if client is None:  # disabled since the request was parked
            return _error_page(request, "unknown_client")
    wanted = data.get("acr_values", "").split()
    methods = [m for m, acr in (("app", "substantial"), ("card", "high")) if claims.satisfies(acr, wanted)]
    hint = data.get("login_hint", "")
    hint = hint.removeprefix("EE") if hint.startswith("EE") else hint
    return render(
        "login.html",
        {
            "client_name": client.row.name,
            "next_url": f"/oauth/authorize/resume?request={row.public_id}",
            "login_hint": hint if hint.isdigit() and len(hint) == 11 else "",
            "methods": methods,
        },
        request=request,
        ui_locales=data.get("ui_locales"),
    )


# UserInfo.


def _userinfo(services: Services, authorization: str | None) -> Response:
    with services.session() as db:
        try:
            info = check_bearer(db, authorization, scope="openid")
        except InvalidToken as exc:
            return JSONResponse(
                {"error": "invalid_token", "error_description": str(exc)},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if info.citizen_id is None:
            return JSONResponse(
                {"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        citizen = grants.citizen_of(db, info.citizen_id)
        requested = grants.requested_claims(db, info.grant_id).get("userinfo") or {}
        body = claims.user_claims(citizen, " ".join(info.scopes), requested)
        client = clients.find(db, info.client_id)
    alg = client.metadata.get("userinfo_signed_response_alg") if client else None
    if alg in services.signing_keys:
        from identity.oauth import jws

        now = int(time.time())
        signed = jws.sign(
            services.keystore,
            services.signing_keys[alg],
            body | {"iss": services.issuer, "aud": info.client_id, "iat": now, "exp": now + 300},
        )
        return Response(signed, media_type="application/jwt", headers={"Cache-Control": "no-store"})
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/oauth/userinfo", summary="UserInfo (GET)")
def userinfo_get(request: Request, services: ServicesDep) -> Response:
    return _userinfo(services, request.headers.get("authorization"))


@router.post("/oauth/userinfo", summary="UserInfo (POST; bearer in header or body)")
def userinfo_post(request: Request, services: ServicesDep, form: FormDep) -> Response:
    authorization = request.headers.get("authorization")
    body_token = dict(form).get("access_token")
    if body_token and not authorization:
        authorization = f"Bearer {body_token}"
    return _userinfo(services, authorization)


# Logout.


def _end_session(request: Request, services: Services, pairs: list[tuple[str, str]]) -> Response:
    data = dict(pairs)
    hint = data.get("id_token_hint")
    with services.session() as db:
        hint_claims = _hint_claims(services, hint) if hint else None
        if hint and hint_claims is None:
            return _error_page(request, "logout_foreign_token")
        client_id = data.get("client_id") or (hint_claims or {}).get("aud")
        if isinstance(client_id, list):
            client_id = client_id[0] if client_id else None
        client = clients.find(db, client_id) if isinstance(client_id, str) else None
        if hint_claims is not None and data.get("client_id") and hint_claims.get("aud") != data["client_id"]:
            return _error_page(request, "logout_other_service")
        target = data.get("post_logout_redirect_uri")
        if target is not None and (client is None or not logout.post_logout_allowed(client, target)):
            return _error_page(request, "logout_bad_redirect")
        token = request.cookies.get(cookies.SESSION)
        identity = authentication.session_identity(db, token)
        if identity is not None and (
            hint_claims is None or hint_claims.get("sub") == identity.personal_code.subject
        ):
            if identity.session_id:
                for notice in logout.notices(
                    db,
                    sid=identity.session_id,
                    subject=identity.personal_code.subject,
                    issuer=services.issuer,
                    keystore=services.keystore,
                    key=services.signing_keys["RS256"],
                ):
                    _deliver(notice)
            authentication.end_session(db, token)
    if target is not None:
        state = data.get("state")
        location = target + (("&" if "?" in target else "?") + urlencode({"state": state}) if state else "")
        response: Response = RedirectResponse(location, status_code=303)
    else:
        response = render("logged_out.html", {}, request=request)
    cookies.clear_session(response)
    return response


def _hint_claims(services: Services, hint: str) -> dict[str, Any] | None:
    try:
        key = services.key_ring.by_kid(jwt.get_unverified_header(hint).get("kid"))
        if key is None:
            return None
        return dict(
            jwt.decode(
                hint,
                jwt.PyJWK(key.jwk).key,
                algorithms=[key.alg],
                options={"verify_exp": False, "verify_aud": False},
                issuer=services.issuer,
            )
        )
    except (jwt.PyJWTError, ValueError):
        return None


def _deliver(notice: logout.LogoutNotice) -> None:
    """POST the logout token; a client that does not answer is logged and skipped."""
    import logging

    import httpx

    try:
        httpx.post(notice.uri, data={"logout_token": notice.logout_token}, timeout=3, follow_redirects=False)
    except httpx.HTTPError as exc:
        logging.getLogger("eid.oidc").warning("back-channel logout to %s failed: %s", notice.client_id, exc)


@router.get("/oauth/logout", summary="RP-initiated logout (GET)", response_class=HTMLResponse)
def end_session_get(request: Request, services: ServicesDep) -> Response:
    return _end_session(request, services, list(request.query_params.multi_items()))


@router.post("/oauth/logout", summary="RP-initiated logout (POST)", response_class=HTMLResponse)
def end_session_post(request: Request, services: ServicesDep, form: FormDep) -> Response:
    return _end_session(request, services, form)


# Pushed authorization requests (RFC 9126).


@router.post("/oauth/par", status_code=201, summary="Pushed authorization request (RFC 9126)")
def pushed_authorization_request(request: Request, services: ServicesDep, form: FormDep) -> Response:
    from authlib.oauth2.rfc6749.errors import OAuth2Error as _Error

    from .oauth import oauth_request

    with services.session() as db:
        oreq = services.oauth.create_oauth2_request(oauth_request(request, services, form, db))
        try:
            client = services.oauth.authenticate_client(
                oreq, ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"], "token"
            )
        except _Error as error:
            status, body, headers = error()
            return services.oauth.handle_response(status, body, headers)
        data = dict(form)
        problems = []
        if data.get("client_id", client.client_id) != client.client_id:
            problems.append("client_id does not match the authenticated client")
        if "request_uri" in data:
            problems.append("request_uri cannot be pushed")
        if data.get("response_type") != "code":
            problems.append("response_type must be code")
        redirect_uri = data.get("redirect_uri") or client.get_default_redirect_uri()
        if not redirect_uri or not client.check_redirect_uri(redirect_uri):
            problems.append("redirect_uri is missing or not registered")
        if problems:
            return JSONResponse(
                {"error": "invalid_request", "error_description": "; ".join(problems)}, status_code=400
            )
        pairs = [
            (k, v) for k, v in form if k not in ("client_secret", "client_assertion", "client_assertion_type")
        ]
        if "client_id" not in data:
            pairs.append(("client_id", client.client_id))
        row = parked.park(db, client.client_id, pairs, lifetime=timedelta(seconds=PAR_LIFETIME))
        body = {"request_uri": PAR_PREFIX + row.public_id, "expires_in": PAR_LIFETIME}
    return JSONResponse(body, status_code=201, headers={"Cache-Control": "no-store"})
