"""Request body limits for every route: by ``Content-Length`` up front, and by counting the
bytes actually streamed (a chunked upload declares no length).

Document uploads (signing, verification, the QR photo) take ``EID_LIMITS__DOCUMENT_BYTES``;
everything else ``EID_LIMITS__BODY_BYTES``. Routes may be stricter still (OCSP and TSA
check ``EID_LIMITS__PROTOCOL_BODY_BYTES`` themselves). Over the limit: 413 problem JSON.
"""

from __future__ import annotations

import json

from starlette.types import Message

from .problems import MEDIA_TYPE, PROBLEM_BASE

# Path prefixes that receive PDFs or images, with the larger limit. A prefix covers its
# sub-paths (``/api/v1/verify`` covers ``/api/v1/verify/qr-image``).
DOCUMENT_PREFIXES = (
    "/api/v1/signing",
    "/api/v1/envelopes",
    "/api/v1/seals",
    "/api/v1/verify",
    "/verify",
    "/v",  # the QR verification page takes the PDF to compare
    "/V",
)
# Room for the multipart envelope around a document: the routes check the document's own
# size against the limit and answer in their own words (a page, a problem); this is the
# backstop for bodies no route would read to the end.
MULTIPART_SLACK = 64 * 1024


class BodyTooLarge(Exception):
    """Raised from ``receive`` once the body passes the limit: it stops the route reading."""


_UNDER_DOCUMENT_PREFIXES = tuple(prefix + "/" for prefix in DOCUMENT_PREFIXES)


def limit_for(path: str, *, default: int, documents: int) -> int:
    if path in DOCUMENT_PREFIXES or path.startswith(_UNDER_DOCUMENT_PREFIXES):
        return documents
    return default


def refusal(limit: int) -> tuple[Message, Message]:
    """The 413 problem answer: its start and body messages."""
    body = json.dumps(
        {
            "type": PROBLEM_BASE + "body-too-large",
            "title": "Request body too large",
            "status": 413,
            "detail": f"the request body is larger than {limit} bytes",
        }
    ).encode("utf-8")
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", MEDIA_TYPE.encode("ascii")),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimits:
    """The limits of one app. ``observability.EdgeMiddleware`` applies them: a declared
    ``Content-Length`` over the limit is refused before the route runs; otherwise its
    ``receive`` counts the bytes and raises :class:`BodyTooLarge` past the limit, drops
    whatever the route answers to the cut-off body, and sends the 413 instead."""

    def __init__(self, *, default: int, documents: int) -> None:
        self.default = default
        self.documents = documents + MULTIPART_SLACK

    def for_path(self, path: str) -> int:
        return limit_for(path, default=self.default, documents=self.documents)
