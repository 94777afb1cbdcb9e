"""Server-rendered pages (Jinja2). Autoescaping is on; every page sets a strict CSP.

Page authors: no inline ``<script>`` and no ``style=""`` (the policy below refuses both);
JavaScript goes in ``api/static/*.js``, data for it in ``data-*`` attributes. Pass the
``request`` to ``render`` so the page comes in the visitor's language (``api/i18n.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from . import i18n

_env = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
    # The templates ship with the code: no stat() of the file on every page (a restart
    # picks up a changed template, as it does changed code).
    auto_reload=False,
)
# Templates of this module's own pages are rendered strictly: a misspelt variable is an
# error in the tests rather than an empty space on a page.
_strict_env = _env.overlay(undefined=StrictUndefined)
_STRICT = frozenset(
    {
        "landing.html",
        "login.html",
        "consent.html",
        "error.html",
        "logged_out.html",
        "portal.html",
        "sign.html",
        "demo.html",
    }
)
CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"


def render(
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    request: Request | None = None,
    ui_locales: str | None = None,
) -> HTMLResponse:
    """Render ``template``; with ``request``, in the visitor's language (else English)."""
    env = _strict_env if template in _STRICT else _env
    html = env.get_template(template).render(**(i18n.context(request, ui_locales=ui_locales) | context))
    response = HTMLResponse(
        html,
        status_code=status,
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            # Pages show personal data and one-time codes: not for shared caches or the back button.
            "Cache-Control": "no-store",
        },
    )
    i18n.remember(request, response)
    return response


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site (for ``next=`` parameters), else ``default``.

    Refuses ``//host`` and ``/\\host`` (browsers read both as another site) and anything
    with a scheme, so a link cannot send the citizen elsewhere after logging in."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ch in target for ch in "\r\n\t\\") or len(target) > 500:
        return default
    return target
