"""A pyHanko ``TimeStamper`` that asks our own TSA in process, never over the network."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from asn1crypto import core, tsp
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError

TsaCallable = Callable[[bytes], bytes | Awaitable[bytes]]
"""Answers one DER TimeStampReq with a DER TimeStampResp, e.g.
``lambda der: services.tsa.respond(der, now=utcnow()).der``. It may be a coroutine
function, so a server can move a blocking key store call to a thread."""


class InProcessTimeStamper(TimeStamper):
    """Gets RFC 3161 tokens from a callable instead of an HTTP TSA.

    pyHanko still builds the request (with a nonce), checks the nonce and status of the
    answer and collects the TSA's certificates, exactly as for a remote TSA.
    """

    def __init__(self, respond: TsaCallable, *, include_nonce: bool = True) -> None:
        super().__init__(include_nonce=include_nonce)  # type: ignore[no-untyped-call]
        self._respond = respond

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        try:
            answer = self._respond(req.dump())
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception as exc:  # noqa: BLE001 - any failure of the TSA is "no timestamp"
            raise TimestampRequestError(f"the time-stamping authority failed: {exc}") from exc
        assert isinstance(answer, bytes)
        try:
            # A rejection has no token, which asn1crypto's TimeStampResp does not allow:
            # read the status from the bare SEQUENCE first.
            status = tsp.PKIStatusInfo.load(core.load(answer)[0].dump()).native
            granted = status["status"] in ("granted", "granted_with_mods")
            # Not ``.native``: asn1crypto rebuilds a value from its native form when it is
            # later copied into the CMS, which costs half a second per token.
            response = tsp.TimeStampResp.load(answer) if granted else None
            if response is not None:
                response["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed  # noqa: B018
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise TimestampRequestError("the time-stamping authority sent an unreadable answer") from exc
        if response is None:
            text = "; ".join(status["status_string"] or []) or "no reason given"
            raise TimestampRequestError(f"the time-stamping authority refused: {text}")
        return response
