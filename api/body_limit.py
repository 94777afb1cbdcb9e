"""Request body limits for every route: by ``Content-Length`` up front, and by counting the
bytes actually streamed (a chunked upload declares no length).

Document uploads (signing, verification, the QR photo) take ``EID_LIMITS__DOCUMENT_BYTES``;
everything else ``EID_LIMITS__BODY_BYTES``. Routes may be stricter still (OCSP and TSA
check ``EID_LIMITS__PROTOCOL_BODY_BYTES`` themselves). Over the limit: 413 problem JSON.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


def limit_for(path: str, *, default: int, documents: int) -> int:
    for prefix in DOCUMENT_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return documents
    return default


def _problem(limit: int) -> tuple[Message, Message]:
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


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, default: int, documents: int) -> None:
        self.app = app
        self.default = default
        self.documents = documents + MULTIPART_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"], default=self.default, documents=self.documents)
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            for message in _problem(limit):
                await send(message)
            return
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # Once over the limit, whatever the route made of the cut-off body (FastAPI
            # turns a failed read into a 400) is replaced by the 413.
            if exceeded:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            for message in _problem(limit):
                await send(message)
