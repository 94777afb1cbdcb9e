"""Languages of the pages: Estonian and English, from small message catalogues.

The language of a page is, in order: ``?lang=`` on the URL (the language switcher's links,
remembered in a cookie by the response), ``ui_locales`` of an OpenID Connect request, the
remembered choice (the cookie), ``Accept-Language``, English. The switcher's explicit
choice comes first so that it also works on a login page whose service asked for the
other language.

A template calls ``t("key", name=value)``; a missing key in Estonian falls back to English,
a missing key in English is a bug and raises ``KeyError`` (the tests render every page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ._catalogue_en import MESSAGES as EN
from ._catalogue_et import MESSAGES as ET

LANGUAGES = ("et", "en")
"""Supported languages, in the order the switcher lists them."""
DEFAULT = "en"
COOKIE = "eid_lang"
NAMES = {"et": "Eesti", "en": "English"}
CATALOGUES: Mapping[str, Mapping[str, str]] = {"en": EN, "et": ET}


@dataclass(frozen=True, slots=True)
class Translator:
    """``t(key, **params)`` for one language; what templates call."""

    lang: str
    """``et`` or ``en``."""

    def __call__(self, key: str, **params: Any) -> str:
        text = CATALOGUES[self.lang].get(key)
        if text is None:
            text = EN[key]
        return text.format(**params) if params else text

    def get(self, key: str, default: str) -> str:
        """The message for ``key``, or ``default`` (for keys made from data, e.g. a scope)."""
        return self(key) if key in EN else default


@dataclass(frozen=True, slots=True, kw_only=True)
class LanguageLink:
    """One entry of the language switcher."""

    code: str
    """``et`` or ``en``."""
    name: str
    """The language's own name for itself."""
    url: str
    """The current page in that language."""
    current: bool
    """The page is shown in this language."""


def _base(tag: str) -> str | None:
    base = tag.strip().split("-")[0].split("_")[0].lower()
    return base if base in LANGUAGES else None


def from_accept_language(header: str) -> str | None:
    """The supported language the browser prefers most (RFC 9110 quality values)."""
    best: tuple[float, int, str] | None = None
    for index, item in enumerate(header.split(",")[:20]):
        tag, _, params = item.partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        lang = _base(tag)
        if lang is None or quality <= 0:
            continue
        candidate = (quality, -index, lang)
        if best is None or candidate > best:
            best = candidate
    return best[2] if best else None


def choose(request: Request | None, *, ui_locales: str | None = None) -> str:
    """The page language for ``request`` (see the module docstring for the order)."""
    if request is None:
        return DEFAULT
    explicit = _base(request.query_params.get("lang", ""))
    if explicit:
        return explicit
    for tag in (ui_locales or "").split():
        if lang := _base(tag):
            return lang
    remembered = _base(request.cookies.get(COOKIE, ""))
    if remembered:
        return remembered
    return from_accept_language(request.headers.get("accept-language", "")) or DEFAULT


def switcher(request: Request | None, current: str) -> list[LanguageLink]:
    """Links to the current page (a GET of it) in each language."""
    links = []
    for code in LANGUAGES:
        if request is None:
            url = f"/?lang={code}"
        else:
            query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
            url = request.url.path + "?" + urlencode([*query, ("lang", code)])
        links.append(LanguageLink(code=code, name=NAMES[code], url=url, current=code == current))
    return links


def context(request: Request | None, *, ui_locales: str | None = None) -> dict[str, Any]:
    """What every page template gets: ``locale``, ``t`` and the switcher's ``languages``."""
    lang = choose(request, ui_locales=ui_locales)
    return {"locale": lang, "t": Translator(lang), "languages": switcher(request, lang)}


def remember(request: Request | None, response: Response) -> None:
    """Keep the switcher's choice (``?lang=``) for the next pages, for a year."""
    if request is None:
        return
    explicit = _base(request.query_params.get("lang", ""))
    if explicit and request.cookies.get(COOKIE) != explicit:
        response.set_cookie(COOKIE, explicit, max_age=365 * 24 * 3600, samesite="lax", httponly=True)
