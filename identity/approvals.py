"""The approval protocol (decoupled, like Smart-ID).

Anything that needs a citizen's private key opens an approval request: the kind
(``auth`` or ``sign``), the hash to sign, a short display text and an expiry of at most
two minutes. The citizen's app lists it, the citizen compares the verification code and
enters the PIN, the app signs the hash and answers. Every state change is one conditional
update whose row count is checked, so a request is answered once and its result taken
once, across any number of service instances.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import update
from sqlmodel import Session, col, select

from keys.models import as_utc, utcnow

from . import _secrets
from .certificates import CertificateChecker
from .errors import ApprovalNotFound, ApprovalRejected, CitizenNotActive
from .models import ApprovalRequest, Citizen

MAX_LIFETIME = timedelta(seconds=120)
MAX_DISPLAY_TEXT = 200
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}


class ApprovalKind(StrEnum):
    AUTH = "auth"
    SIGN = "sign"


class ApprovalState(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    REFUSED = "refused"
    EXPIRED = "expired"
    FAILED = "failed"


def verification_code(hash_value: bytes) -> str:
    """The Smart-ID rule: last two bytes of SHA-256(hash), big-endian, mod 10000, 4 digits."""
    return f"{int.from_bytes(hashlib.sha256(hash_value).digest()[-2:], 'big') % 10000:04d}"


def open_request(
    session: Session,
    *,
    citizen: Citizen,
    kind: ApprovalKind,
    hash_value: bytes,
    hash_algorithm: str,
    display_text: str,
    binding: str | None,
    lifetime: timedelta = MAX_LIFETIME,
    now: datetime | None = None,
) -> ApprovalRequest:
    """Open a request for the citizen's app. ``binding`` ties it to one browser. Commits."""
    when = now or utcnow()
    if citizen.state != "active":
        raise CitizenNotActive(f"the citizen's account is {citizen.state}")
    if _DIGEST_SIZES.get(hash_algorithm) != len(hash_value):
        raise ApprovalRejected("the hash does not match its algorithm")
    assert citizen.id is not None
    request = ApprovalRequest(
        public_id=_secrets.public_id("ar"),
        citizen_id=citizen.id,
        kind=ApprovalKind(kind).value,
        hash=hash_value,
        hash_algorithm=hash_algorithm,
        display_text=display_text.strip()[:MAX_DISPLAY_TEXT],
        verification_code=verification_code(hash_value),
        binding_hash=_secrets.digest(binding) if binding else None,
        state=ApprovalState.PENDING.value,
        expires_at=when + min(lifetime, MAX_LIFETIME),
    )
    session.add(request)
    session.commit()
    session.refresh(request)
    return request


def _expire(session: Session, now: datetime, **filters: object) -> None:
    query = (
        update(ApprovalRequest)
        .where(col(ApprovalRequest.state) == ApprovalState.PENDING.value)
        .where(col(ApprovalRequest.expires_at) <= now)
    )
    for name, value in filters.items():
        query = query.where(getattr(ApprovalRequest, name) == value)
    session.execute(query.values(state=ApprovalState.EXPIRED.value))
    session.commit()


def _current(session: Session, public_id: str, now: datetime) -> ApprovalRequest | None:
    """Read a request; write only when it is pending past its expiry (then mark it expired)."""
    request = session.exec(select(ApprovalRequest).where(ApprovalRequest.public_id == public_id)).first()
    if (
        request is not None
        and request.state == ApprovalState.PENDING.value
        and as_utc(request.expires_at) <= now
    ):
        _expire(session, now, public_id=public_id)
        session.refresh(request)
    return request


def pending_for(session: Session, citizen: Citizen, *, now: datetime | None = None) -> list[ApprovalRequest]:
    """The citizen's pending, unexpired requests, oldest first."""
    when = now or utcnow()
    _expire(session, when, citizen_id=citizen.id)
    return list(
        session.exec(
            select(ApprovalRequest)
            .where(ApprovalRequest.citizen_id == citizen.id)
            .where(ApprovalRequest.state == ApprovalState.PENDING.value)
            .order_by(col(ApprovalRequest.created_at), col(ApprovalRequest.id))
        )
    )


def for_citizen(
    session: Session, citizen: Citizen, public_id: str, *, now: datetime | None = None
) -> ApprovalRequest:
    """One of the citizen's requests, in any state; another citizen's is not found."""
    when = now or utcnow()
    request = _current(session, public_id, when)
    if request is None or request.citizen_id != citizen.id:
        raise ApprovalNotFound("no such approval request")
    return request


def for_browser(
    session: Session, public_id: str, binding: str | None, *, now: datetime | None = None
) -> ApprovalRequest:
    """A request as seen by the browser that opened it; any other browser gets not found."""
    when = now or utcnow()
    request = _current(session, public_id, when)
    if request is None or binding is None or request.binding_hash != _secrets.digest(binding):
        raise ApprovalNotFound("no such approval request in this browser")
    return request


def _transition(
    session: Session, request: ApprovalRequest, state: ApprovalState, now: datetime, **values: object
) -> bool:
    result = session.execute(
        update(ApprovalRequest)
        .where(col(ApprovalRequest.id) == request.id)
        .where(col(ApprovalRequest.state) == ApprovalState.PENDING.value)
        .where(col(ApprovalRequest.expires_at) > now)
        .values(state=state.value, answered_at=now, **values)
    )
    session.commit()
    session.refresh(request)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _not_pending(request: ApprovalRequest, now: datetime) -> ApprovalRejected:
    if request.state == ApprovalState.PENDING.value and as_utc(request.expires_at) <= now:
        return ApprovalRejected("the request has expired")
    return ApprovalRejected(f"the request is already {request.state}")


def refuse(
    session: Session, citizen: Citizen, public_id: str, *, now: datetime | None = None
) -> ApprovalRequest:
    """The citizen said no. Commits."""
    when = now or utcnow()
    request = for_citizen(session, citizen, public_id, now=when)
    if not _transition(session, request, ApprovalState.REFUSED, when):
        raise _not_pending(request, when)
    return request


def approve(
    session: Session,
    citizen: Citizen,
    public_id: str,
    *,
    certificate: bytes,
    signature: bytes,
    checker: CertificateChecker,
    now: datetime | None = None,
) -> ApprovalRequest:
    """Check the app's answer and complete the request, once. Commits.

    A wrong answer (bad signature, wrong key, revoked certificate) fails the request, so
    the browser waiting on it learns at once; an answer to a request that is no longer
    pending changes nothing.
    """
    when = now or utcnow()
    request = for_citizen(session, citizen, public_id, now=when)
    if request.state != ApprovalState.PENDING.value:
        raise _not_pending(request, when)
    try:
        checked = checker.check(
            session,
            citizen=citizen,
            certificate=certificate,
            kind=request.kind,
            now=when,
        )
        checker.verify_digest_signature(checked, request.hash, request.hash_algorithm, signature)
    except ApprovalRejected as exc:
        _transition(session, request, ApprovalState.FAILED, when, failure_reason=str(exc)[:200])
        raise
    if not _transition(
        session,
        request,
        ApprovalState.COMPLETED,
        when,
        certificate_serial=format(checked.serial_number, "x"),
        signature=signature,
    ):
        raise _not_pending(request, when)
    return request


def take_result(session: Session, request: ApprovalRequest, *, now: datetime | None = None) -> bool:
    """Mark a completed request's result as used; True only for the first caller. Commits."""
    when = now or utcnow()
    result = session.execute(
        update(ApprovalRequest)
        .where(col(ApprovalRequest.id) == request.id)
        .where(col(ApprovalRequest.state) == ApprovalState.COMPLETED.value)
        .where(col(ApprovalRequest.consumed_at).is_(None))
        .values(consumed_at=when)
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]
