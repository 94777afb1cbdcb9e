"""The two cookies: a browser binding and a login session. Both HttpOnly, SameSite=Lax."""

from __future__ import annotations

import secrets

from fastapi import Request, Response

from .settings import Settings

BINDING = "eid_binding"
SESSION = "eid_session"


def _secure(settings: Settings) -> bool:
    return settings.public_url.startswith("https://")


def binding(request: Request, response: Response, settings: Settings) -> str:
    """This browser's binding secret, created on first use."""
    value = request.cookies.get(BINDING)
    if not value or len(value) > 100:
        value = secrets.token_urlsafe(32)
        response.set_cookie(
            BINDING, value, httponly=True, samesite="lax", secure=_secure(settings), max_age=24 * 3600
        )
    return value


def set_session(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION, token, httponly=True, samesite="lax", secure=_secure(settings), max_age=8 * 3600
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION)
