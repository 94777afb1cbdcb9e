"""``Idempotency-Key`` for the requests that start signing or sealing.

A client that lost the answer to a POST sends it again with the same key and gets the
same session (and, once done, the same signed file) instead of a second signature;
signatures are not deterministic, so signing twice would give two different documents.

The key is claimed (a row under a unique constraint, committed) before the work starts,
so of two concurrent retries one does the work and the other is told to wait. A key sent
again with a different request is refused. A request that fails releases its key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from keys.errors import ServiceError
from signing.models import IdempotencyRecord

from .services import Services

HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,200}")


class InvalidIdempotencyKey(ServiceError):
    status = 400
    public = True
    slug = "invalid-idempotency-key"
    title = "Invalid Idempotency-Key"


class IdempotencyKeyReused(ServiceError):
    status = 422
    public = True
    slug = "idempotency-key-reused"
    title = "Idempotency-Key used for another request"


class RequestInProgress(ServiceError):
    status = 409
    public = True
    slug = "idempotent-request-in-progress"
    title = "The first request with this Idempotency-Key is still running"


def check_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _KEY.fullmatch(value):
        raise InvalidIdempotencyKey("Idempotency-Key must be 1-200 printable ASCII characters, no spaces")
    return value


def fingerprint(route: str, options: Iterable[tuple[str, object]], body_sha256: bytes) -> str:
    """What makes two requests the same: the route, their options and the body."""
    digest = hashlib.sha256(route.encode())
    for name, value in sorted((name, repr(value)) for name, value in options):
        digest.update(b"\0" + name.encode() + b"=" + value.encode())
    digest.update(b"\0" + body_sha256)
    return digest.hexdigest()


def claim(db: Session, principal: str, key: str, print_: str) -> str | None:
    """Claim ``key`` for this request. Returns None when the caller should do the work,
    or the resource id an earlier identical request created. Commits."""
    db.add(IdempotencyRecord(principal=principal, key=key, fingerprint=print_))
    try:
        db.commit()
        return None
    except IntegrityError:
        db.rollback()
    earlier = db.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
        )
    ).one()
    if earlier.fingerprint != print_:
        raise IdempotencyKeyReused("this Idempotency-Key was sent before with a different request")
    if earlier.resource is None:
        raise RequestInProgress("the first request with this Idempotency-Key is still running; retry shortly")
    return earlier.resource


def complete(db: Session, principal: str, key: str, resource: str) -> None:
    """Record what the request created. Does not commit: part of the caller's transaction."""
    row = db.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
        )
    ).one()
    row.resource = resource
    db.add(row)


def release(db: Session, principal: str, key: str) -> None:
    """Forget the key after a failed request, so a retry can do the work. Commits."""
    row = db.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
        )
    ).first()
    if row is not None and row.resource is None:
        db.delete(row)
        db.commit()


# Async routes call these: a database write may wait for SQLite's write gate, which must
# not happen on the event loop.


async def async_claim(services: Services, principal: str, key: str, print_: str) -> str | None:
    def work() -> str | None:
        with services.session() as db:
            return claim(db, principal, key, print_)

    return await run_in_threadpool(work)


async def async_release(services: Services, principal: str, key: str) -> None:
    def work() -> None:
        with services.session() as db:
            release(db, principal, key)

    await run_in_threadpool(work)
