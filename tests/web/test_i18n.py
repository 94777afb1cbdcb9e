"""The language rules of ``api/i18n.py`` and the completeness of the catalogues."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request

from api import i18n
from api._catalogue_en import MESSAGES as EN
from api._catalogue_et import MESSAGES as ET

TEMPLATES = Path(i18n.__file__).with_name("templates")


def _request(query: str = "", cookie: str = "", accept: str = "") -> Request:
    headers = [(b"accept-language", accept.encode()), (b"cookie", cookie.encode())]
    return Request(
        {"type": "http", "method": "GET", "path": "/x", "query_string": query.encode(), "headers": headers}
    )


def test_the_order_of_the_rules() -> None:
    assert i18n.choose(_request(accept="et-EE,et;q=0.9,en;q=0.8")) == "et"
    assert i18n.choose(_request(accept="de, en;q=0.5, et;q=0.7")) == "et"  # quality values count
    assert i18n.choose(_request(accept="fr, de")) == "en"  # nothing supported: English
    assert i18n.choose(_request(cookie="eid_lang=et", accept="en")) == "et"  # remembered choice first
    assert i18n.choose(_request(cookie="eid_lang=et"), ui_locales="en-GB et") == "en"  # then ui_locales
    assert i18n.choose(_request(query="lang=et", cookie="eid_lang=en"), ui_locales="en") == "et"
    assert i18n.choose(_request(query="lang=xx", accept="et")) == "et"  # unknown values are ignored


def test_switcher_links_keep_the_query() -> None:
    links = i18n.switcher(_request(query="request=rq-1&lang=en"), "en")
    assert [(link.code, link.url, link.current) for link in links] == [
        ("et", "/x?request=rq-1&lang=et", False),
        ("en", "/x?request=rq-1&lang=en", True),
    ]


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    assert set(ET) == set(EN)
    for key, text in EN.items():
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", ET[key])), key


def test_every_key_the_templates_use_exists() -> None:
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_.A-Z0-9-]+)["']""", template.read_text()))
    # A key ending in "." is completed from data (a state, a level): some key must continue it.
    missing = [
        key for key in used if key not in EN and not any(k.startswith(key) for k in EN if key.endswith("."))
    ]
    assert used and not missing, missing
