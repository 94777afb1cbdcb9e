"""A strict reader of ``application/x-www-form-urlencoded`` bodies (the OAuth endpoints').

``urllib.parse.parse_qsl`` is lenient: it replaces undecodable bytes, keeps broken
``%`` escapes as text and accepts any byte. OAuth parameters are ASCII tokens, so a body
that is not well formed is refused (``MalformedForm``, answered as ``invalid_request``)
instead of guessed at. Repeated parameters are kept, in order: Authlib refuses them
where RFC 6749 says a parameter must not be repeated.
"""

from __future__ import annotations

from urllib.parse import unquote

MAX_FORM_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


class MalformedForm(ValueError):
    """The body is not a well-formed urlencoded form; the message says why."""


def _decode(part: str) -> str:
    if "+" in part:
        part = part.replace("+", " ")
    if "%" not in part:
        return part
    pieces = part.split("%")
    for piece in pieces[1:]:
        if len(piece) < 2 or not _is_hex(piece[:2]):
            raise MalformedForm("a '%' escape is not followed by two hex digits")
    try:
        return unquote(part, errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedForm("a '%' escape does not decode as UTF-8") from exc


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """The body's ``name=value`` pairs, repeats kept; ``MalformedForm`` if not well formed.

    Empty pieces between ``&`` are skipped and a name without ``=`` has the empty value,
    as browsers and ``parse_qsl(keep_blank_values=True)`` do.
    """
    if len(body) > MAX_FORM_BYTES:
        raise MalformedForm(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MalformedForm("the form has bytes outside ASCII; escape them with '%'") from exc
    if not text.isprintable():
        raise MalformedForm("the form has control characters")
    pairs = []
    for piece in text.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if not name:
            raise MalformedForm("a parameter has no name")
        pairs.append((_decode(name), _decode(value)))
    return pairs


def is_form(content_type: str | None) -> bool:
    """Is this ``Content-Type`` a urlencoded form (parameters such as ``charset`` allowed)?"""
    if not content_type:
        return False
    return content_type.partition(";")[0].strip().lower() == FORM_TYPE
