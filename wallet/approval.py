"""Answering requests: wait for one, check its verification code, approve or refuse.

The app recomputes the verification code from the hash it is asked to sign. The
citizen compares the code in the app with the one in the browser; if the service
sent a code that does not belong to the hash, the citizen would be comparing the
wrong thing, so such a request is never approved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .client import ServiceClient
from .crypto import check_digest
from .errors import NothingPending, ServerError, VerificationCodeMismatch, WalletError
from .messages import AnswerResult, ApprovalRequest
from .state import Purpose
from .store import Wallet
from .unlock import unlocked

POLL_INTERVAL = 0.5
"""Seconds between polls while waiting for a request."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Clock:
    """Time as the waiting loop sees it; tests pass their own."""

    now: Callable[[], float] = time.monotonic
    """Monotonic seconds."""
    sleep: Callable[[float], None] = time.sleep
    """Waits between polls."""


def mismatch_message(request: ApprovalRequest) -> str:
    return (
        f"request {request.id}: the service shows verification code {request.server_code} "
        f"but its hash gives {request.verification_code}; do not approve it"
    )


def check_code(request: ApprovalRequest) -> ApprovalRequest:
    """Return ``request`` if the service's code is the one its hash gives."""
    if not request.code_matches:
        raise VerificationCodeMismatch(mismatch_message(request))
    return request


def _find(client: ServiceClient, request_id: str | None) -> ApprovalRequest | None:
    if request_id is None:
        pending = client.pending_requests()
        return pending[0] if pending else None
    try:
        request = client.get_request(request_id)
    except ServerError as exc:
        if exc.status == 404:
            return None  # not (yet) there: keep waiting
        raise
    if request.state != "pending":
        raise WalletError(f"request {request.id} is {request.state}, not pending")
    return request


def next_request(
    client: ServiceClient, *, request_id: str | None = None, wait: float = 0.0, clock: Clock | None = None
) -> ApprovalRequest:
    """The oldest pending request (or ``request_id``), polling for up to ``wait`` seconds."""
    clock = clock or Clock()
    deadline = clock.now() + max(wait, 0.0)
    while True:
        request = _find(client, request_id)
        if request is not None:
            return request
        remaining = deadline - clock.now()
        if remaining <= 0:
            what = f"request {request_id}" if request_id else "request"
            raise NothingPending(f"no pending {what}" + (f" within {wait:g} s" if wait > 0 else ""))
        clock.sleep(min(POLL_INTERVAL, remaining))


def approve(wallet: Wallet, client: ServiceClient, request: ApprovalRequest, *, pin: str) -> AnswerResult:
    """Sign the request's hash with the key its kind needs and send the answer.

    The PIN is tried (and a try spent) only after the request passed every check.
    """
    check_code(request)
    purpose = Purpose(request.kind)
    certificate = wallet.load().key(purpose).certificate
    check_digest(request.hash, request.hash_algorithm)
    with unlocked(wallet, purpose, pin) as signer:
        signature = signer.sign_digest(request.hash, request.hash_algorithm)
    return client.approve(request.id, certificate=certificate, signature=signature)


def refuse(client: ServiceClient, request: ApprovalRequest) -> AnswerResult:
    """Refuse a request. Signs nothing, so it needs no PIN and no matching code."""
    return client.refuse(request.id)
