"""``/demo``: a sample government service, a relying party of our own provider.

It is deliberately an outsider: it talks to the provider over HTTP at the public URL with
an ordinary OpenID Connect client (Authlib's httpx client: authorization code with PKCE,
``state`` and ``nonce``; the ID token checked with PyJWT against the published JWKS), and
asks for a signature the way any relying party would (a client-credentials token with the
``signing`` scope, an envelope for the citizen, the signed PDF fetched with that token).
Only in development: its client is registered on first use (an operator's registration,
stored in ``<data_dir>/demo-rp.json``), and its own small session is an HMAC-signed cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import warnings
from dataclasses import asdict, dataclass
from datetime import date
from typing import Annotated, Any

import httpx
import jwt
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from identity.oauth import clients

from .. import i18n
from ..demo_document import sample_pdf
from ..deps import get_services
from ..pages import render
from ..services import Services
from ..settings import Environment

router = APIRouter(prefix="/demo", tags=["demo"], include_in_schema=False)
ServicesDep = Annotated[Services, Depends(get_services)]
COOKIE = "demo_rp"
CLIENT_NAME = "Demo: Residence certificate service"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoClient:
    """The demo's registration with the provider."""

    client_id: str
    """Issued by the provider."""
    client_secret: str
    """Issued by the provider (only its hash is stored there)."""
    redirect_uri: str
    """``<public URL>/demo/callback``."""
    cookie_key: str
    """Key of the HMAC over the demo's session cookie (hex)."""


def _config(services: Services) -> DemoClient:
    """The demo client, registered on first use (the winner of a race is kept)."""
    path = services.settings.data_dir / "demo-rp.json"
    redirect_uri = services.issuer + "/demo/callback"
    if path.exists():
        stored = DemoClient(**json.loads(path.read_text()))
        if stored.redirect_uri == redirect_uri:
            with services.session() as db:
                if clients.find(db, stored.client_id) is not None:
                    return stored
        path.unlink(missing_ok=True)  # the public URL changed or the client was removed
    with services.session() as db:
        created = clients.register(
            db,
            name=CLIENT_NAME,
            redirect_uris=[redirect_uri],
            scopes=["openid", "profile", "signing"],
            grant_types=["authorization_code", "client_credentials"],
            actor="demo set-up",
        )
    assert created.client_secret is not None
    config = DemoClient(
        client_id=created.client.client_id,
        client_secret=created.client_secret,
        redirect_uri=redirect_uri,
        cookie_key=secrets.token_hex(32),
    )
    temporary = path.with_name(f".demo-rp.{secrets.token_hex(4)}")
    temporary.write_text(json.dumps(asdict(config)))
    try:
        os.link(temporary, path)  # fails if another worker was first
    except FileExistsError:
        return DemoClient(**json.loads(path.read_text()))
    finally:
        temporary.unlink(missing_ok=True)
    return config


def _read_cookie(request: Request, config: DemoClient) -> dict[str, Any]:
    raw = request.cookies.get(COOKIE, "")
    body, _, mac = raw.partition(".")
    expected = hmac.new(bytes.fromhex(config.cookie_key), body.encode(), hashlib.sha256).hexdigest()
    if not body or not hmac.compare_digest(mac, expected):
        return {}
    try:
        value = json.loads(base64.urlsafe_b64decode(body.encode()))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _write_cookie(response: Response, config: DemoClient, value: dict[str, Any]) -> None:
    body = base64.urlsafe_b64encode(json.dumps(value).encode()).decode()
    mac = hmac.new(bytes.fromhex(config.cookie_key), body.encode(), hashlib.sha256).hexdigest()
    response.set_cookie(COOKIE, f"{body}.{mac}", httponly=True, samesite="lax", path="/demo", max_age=3600)


def _oauth_client(config: DemoClient, **extra: Any) -> Any:
    # Imported here: Authlib warns on import that it prefers httpx2 to httpx; the demo is the
    # only user and the warning must not reach the test suite's warnings-as-errors.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client(
        client_id=config.client_id,
        client_secret=config.client_secret,
        redirect_uri=config.redirect_uri,
        timeout=30,
        **extra,
    )


def _disabled(request: Request, services: Services) -> Response | None:
    if services.settings.environment is Environment.DEVELOPMENT:
        return None
    t = i18n.Translator(i18n.choose(request))
    context = {"title": t("demo.off.title"), "detail": t("demo.off.detail"), "advice": None}
    return render("error.html", context, status=404, request=request)


def _page(request: Request, **context: Any) -> HTMLResponse:
    base = {
        "claims": None,
        "envelope": None,
        "envelope_id": None,
        "problem": None,
        "client_name": CLIENT_NAME,
    }
    return render("demo.html", base | context, request=request)


@router.get("", response_class=HTMLResponse)
async def demo_home(request: Request, services: ServicesDep) -> Response:
    if (off := _disabled(request, services)) is not None:
        return off
    config = _config(services)
    session = _read_cookie(request, config)
    return _page(request, claims=session.get("claims"), envelope_id=session.get("envelope"))


@router.get("/login")
async def demo_login(request: Request, services: ServicesDep) -> Response:
    if (off := _disabled(request, services)) is not None:
        return off
    config = _config(services)
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    async with _oauth_client(config, scope="openid profile", code_challenge_method="S256") as client:
        url, state = client.create_authorization_url(
            services.issuer + "/oauth/authorize",
            code_verifier=verifier,
            nonce=nonce,
            ui_locales=i18n.choose(request),
        )
    response = RedirectResponse(url, status_code=303)
    _write_cookie(response, config, {"state": state, "nonce": nonce, "verifier": verifier})
    return response


@router.get("/callback")
async def demo_callback(request: Request, services: ServicesDep) -> Response:
    if (off := _disabled(request, services)) is not None:
        return off
    config = _config(services)
    session = _read_cookie(request, config)
    params = request.query_params
    t = i18n.Translator(i18n.choose(request))
    if not session.get("state") or params.get("state") != session["state"]:
        return _page(request, problem=t("demo.problem.state"))
    if params.get("iss") != services.issuer:  # RFC 9207: the answer comes from our provider
        return _page(request, problem=t("demo.problem.iss"))
    if "error" in params:
        key = "demo.problem.denied" if params["error"] == "access_denied" else "demo.problem.error"
        return _page(request, problem=t(key, error=params.get("error_description", params["error"])))
    try:
        async with _oauth_client(config) as client:
            token = await client.fetch_token(
                services.issuer + "/oauth/token",
                code=params.get("code", ""),
                code_verifier=session["verifier"],
            )
            jwks = (await client.get(services.issuer + "/oauth/jwks")).json()
        claims = _check_id_token(token["id_token"], jwks, config, services.issuer, session["nonce"])
    except (httpx.HTTPError, jwt.PyJWTError, KeyError, ValueError) as exc:
        return _page(request, problem=t("demo.problem.token", error=type(exc).__name__))
    response = RedirectResponse("/demo", status_code=303)
    _write_cookie(response, config, {"claims": claims})
    return response


def _check_id_token(
    id_token: str, jwks: dict[str, Any], config: DemoClient, issuer: str, nonce: str
) -> dict[str, Any]:
    header = jwt.get_unverified_header(id_token)
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        id_token,
        key=key,
        algorithms=["RS256", "ES256"],
        audience=config.client_id,
        issuer=issuer,
        options={"require": ["exp", "iat", "sub", "nonce"]},
    )
    if not hmac.compare_digest(claims["nonce"], nonce):
        raise ValueError("the ID token's nonce is not ours")
    shown = ("sub", "given_name", "family_name", "birthdate", "acr", "amr", "auth_time")
    return {name: claims[name] for name in shown if name in claims}


async def _service_token(client: Any, issuer: str) -> str:
    token = await client.fetch_token(
        issuer + "/oauth/token", grant_type="client_credentials", scope="signing"
    )
    return str(token["access_token"])


@router.post("/sign")
async def demo_sign(request: Request, services: ServicesDep) -> Response:
    """Create an envelope for the logged-in citizen and send them to sign it."""
    if (off := _disabled(request, services)) is not None:
        return off
    config = _config(services)
    session = _read_cookie(request, config)
    claims = session.get("claims")
    t = i18n.Translator(i18n.choose(request))
    if not claims:
        return RedirectResponse("/demo", status_code=303)
    name = f"{claims.get('given_name', '')} {claims.get('family_name', '')}".strip()
    document = sample_pdf(
        title=t("demo.pdf.title"),
        lines=[t("demo.pdf.applicant", name=name), t("demo.pdf.text"), t("demo.pdf.sign")],
        today=date.today(),
    )
    try:
        async with _oauth_client(config) as client:
            bearer = await _service_token(client, services.issuer)
            created = await client.post(
                services.issuer + "/api/v1/envelopes",
                params={"signer": str(claims["sub"]).removeprefix("EE"), "name": "residence-application.pdf"},
                content=document,
                headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/pdf"},
            )
            created.raise_for_status()
    except httpx.HTTPError as exc:
        return _page(request, claims=claims, problem=t("demo.problem.sign", error=str(exc)[:200]))
    envelope_id = created.json()["id"]
    response = RedirectResponse(f"/sign?envelope={envelope_id}&return=/demo/signed", status_code=303)
    _write_cookie(response, config, {"claims": claims, "envelope": envelope_id})
    return response


async def _fetch_envelope(
    request: Request, services: Services, suffix: str
) -> tuple[dict[str, Any], httpx.Response] | Response:
    """GET the demo session's envelope (``suffix``: "" or "/document") with the service's
    own token, as a relying party would; back to /demo when there is no envelope yet."""
    config = _config(services)
    session = _read_cookie(request, config)
    if not session.get("envelope"):
        return RedirectResponse("/demo", status_code=303)
    async with _oauth_client(config) as client:
        bearer = await _service_token(client, services.issuer)
        answer = await client.get(
            services.issuer + f"/api/v1/envelopes/{session['envelope']}{suffix}",
            headers={"Authorization": f"Bearer {bearer}"},
        )
    return session, answer


@router.get("/signed", response_class=HTMLResponse)
async def demo_signed(request: Request, services: ServicesDep) -> Response:
    """What the service learns of the envelope, with its own token."""
    if (off := _disabled(request, services)) is not None:
        return off
    fetched = await _fetch_envelope(request, services, "")
    if isinstance(fetched, Response):
        return fetched
    session, answer = fetched
    return _page(request, claims=session.get("claims"), envelope=answer.json() if answer.is_success else None)


@router.get("/document")
async def demo_document(request: Request, services: ServicesDep) -> Response:
    """The signed PDF, fetched by the service with its own token."""
    if (off := _disabled(request, services)) is not None:
        return off
    fetched = await _fetch_envelope(request, services, "/document")
    if isinstance(fetched, Response):
        return fetched
    _, answer = fetched
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type", "application/pdf"),
        headers={"Content-Disposition": 'attachment; filename="residence-application-signed.pdf"'},
    )


@router.post("/logout")
async def demo_logout(request: Request, services: ServicesDep) -> Response:
    response = RedirectResponse("/demo", status_code=303)
    response.delete_cookie(COOKIE, path="/demo")
    return response
