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
from typing import Protocol

from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from keys.dbapi import Prepared, Tx, loaded
from keys.models import as_utc, utcnow

from . import _secrets
from .errors import ApprovalNotFound, ApprovalRejected, CitizenNotActive
from .models import ApprovalRequest, Citizen

MAX_LIFETIME = timedelta(seconds=120)
MAX_DISPLAY_TEXT = 200
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}

# Prepared statements (``keys.dbapi``): a login opens, lists, polls and takes a request,
# each a statement or two that cost less than the ORM's work around them. The requests
# handed out are plain ``ApprovalRequest`` values read from these, in no session.
_TABLE = ApprovalRequest.__table__  # type: ignore[attr-defined]
_NAMES = tuple(column.name for column in _TABLE.columns)
_INSERTED = tuple(name for name in _NAMES if name != "id")
# RETURNING: the request as stored, its id included, without reading it again.
_INSERT = Prepared(
    insert(_TABLE).values({name: bindparam(name) for name in _INSERTED}).returning(*_TABLE.columns)
)
_BY_PUBLIC_ID = Prepared(core_select(*_TABLE.columns).where(_TABLE.c.public_id == bindparam("public_id")))
_BY_ID = Prepared(core_select(*_TABLE.columns).where(_TABLE.c.id == bindparam("request_id")))
_PENDING_OF = Prepared(
    core_select(*_TABLE.columns)
    .where(_TABLE.c.citizen_id == bindparam("citizen_id"))
    .where(_TABLE.c.state == "pending")
    .order_by(_TABLE.c.created_at, _TABLE.c.id)
)


def _expiring(column: str, param: str) -> Prepared:
    """Mark expired the pending requests past their expiry whose ``column`` is ``param``."""
    return Prepared(
        update(_TABLE)
        .where(_TABLE.c[column] == bindparam(param))
        .where(_TABLE.c.state == "pending")
        .where(_TABLE.c.expires_at <= bindparam("now"))
        .values(state="expired")
    )


EXPIRE_ONE = _expiring("id", "request_id")
"""One request (``request_id``, ``now``) if it is pending past its expiry; the answers use it too."""
_EXPIRE_OF = _expiring("citizen_id", "citizen_id")
_TAKE = Prepared(
    update(_TABLE)
    .where(_TABLE.c.id == bindparam("request_id"))
    .where(_TABLE.c.state == "completed")
    .where(_TABLE.c.consumed_at.is_(None))
    .values(consumed_at=bindparam("now"))
)


def _request(values: tuple[object, ...]) -> ApprovalRequest:
    return loaded(ApprovalRequest, _NAMES, values)


def _reload(tx: Tx, request: ApprovalRequest) -> None:
    """Set ``request`` to what is stored now (another writer changed it)."""
    found = tx.converted(_BY_ID, {"request_id": request.id})
    assert found is not None
    for name, value in zip(_NAMES, found, strict=True):
        set_committed_value(request, name, value)


class CitizenRef(Protocol):
    """What the approval protocol needs of a citizen: a ``Citizen`` row, or the device
    owner an app call was authenticated as (``identity.app_tokens.DeviceOwner``)."""

    @property
    def id(self) -> int | None: ...
    @property
    def public_id(self) -> str: ...
    @property
    def state(self) -> str: ...


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
    tx: Tx,
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
    """Open a request for the citizen's app. ``binding`` ties it to one browser. Does not
    commit: the caller commits it with what it belongs to (a signing session, say)."""
    when = now or utcnow()
    if citizen.state != "active":
        raise CitizenNotActive(f"the citizen's account is {citizen.state}")
    if _DIGEST_SIZES.get(hash_algorithm) != len(hash_value):
        raise ApprovalRejected("the hash does not match its algorithm")
    assert citizen.id is not None
    values: dict[str, object] = {
        "public_id": _secrets.public_id("ar"),
        "citizen_id": citizen.id,
        "kind": ApprovalKind(kind).value,
        "hash": hash_value,
        "hash_algorithm": hash_algorithm,
        "display_text": display_text.strip()[:MAX_DISPLAY_TEXT],
        "verification_code": verification_code(hash_value),
        "binding_hash": _secrets.digest(binding) if binding else None,
        "state": ApprovalState.PENDING.value,
        "created_at": when,
        "expires_at": when + min(lifetime, MAX_LIFETIME),
    }
    stored = tx.converted(_INSERT, {name: values.get(name) for name in _INSERTED})
    assert stored is not None
    return _request(stored)


_TRANSITIONS: dict[tuple[str, ...], Prepared] = {}


def _transition_statement(names: tuple[str, ...]) -> Prepared:
    """The conditional UPDATE of a pending, unexpired request, setting ``names`` (``new_<name>``)."""
    statement = _TRANSITIONS.get(names)
    if statement is None:
        statement = Prepared(
            update(_TABLE)
            .where(_TABLE.c.id == bindparam("request_id"))
            .where(_TABLE.c.state == ApprovalState.PENDING.value)
            .where(_TABLE.c.expires_at > bindparam("now"))
            .values({name: bindparam(f"new_{name}") for name in names})
        )
        _TRANSITIONS[names] = statement
    return statement


def write_transition(
    tx: Tx, request_id: int, state: ApprovalState, now: datetime, **values: object
) -> dict[str, object] | None:
    """Move a pending, unexpired request to ``state`` with one conditional update; does not
    commit. The values written, or None when the request was no longer pending (nothing
    changed)."""
    new = {"state": state.value, "answered_at": now, **values}
    params = {"request_id": request_id, "now": now} | {f"new_{name}": value for name, value in new.items()}
    return new if tx.count(_transition_statement(tuple(new)), params) == 1 else None


def _current(tx: Tx, public_id: str, now: datetime) -> ApprovalRequest | None:
    """Read a request; write only when it is pending past its expiry (then mark it expired;
    the caller commits)."""
    found = tx.converted(_BY_PUBLIC_ID, {"public_id": public_id})
    if found is None:
        return None
    request = _request(found)
    if request.state == ApprovalState.PENDING.value and as_utc(request.expires_at) <= now:
        tx.count(EXPIRE_ONE, {"request_id": request.id, "now": now})
        _reload(tx, request)
    return request


def pending_for(
    session: Session, citizen: CitizenRef, *, now: datetime | None = None
) -> list[ApprovalRequest]:
    """The citizen's pending, unexpired requests, oldest first. Commits."""
    assert citizen.id is not None
    pending = pending_in(Tx(session), citizen.id, now=now or utcnow())
    session.commit()
    return pending


def pending_in(tx: Tx, citizen_id: int, *, now: datetime) -> list[ApprovalRequest]:
    """``pending_for`` on a transaction it does not commit (a group's: ``api.group_commit``)."""
    pending = [_request(row) for row in tx.converted_rows(_PENDING_OF, {"citizen_id": citizen_id})]
    # Write (and take the database's write lock) only when something has actually expired.
    if any(as_utc(request.expires_at) <= now for request in pending):
        tx.count(_EXPIRE_OF, {"citizen_id": citizen_id, "now": now})
        pending = [request for request in pending if as_utc(request.expires_at) > now]
    return pending


def for_citizen(
    session: Session, citizen: CitizenRef, public_id: str, *, now: datetime | None = None
) -> ApprovalRequest:
    """One of the citizen's requests, in any state; another citizen's is not found."""
    when = now or utcnow()
    request = _current(Tx(session), public_id, when)
    session.commit()  # an expiry it wrote
    if request is None or request.citizen_id != citizen.id:
        raise ApprovalNotFound("no such approval request")
    return request


def for_browser(
    tx: Tx, public_id: str, binding: str | None, *, now: datetime | None = None
) -> ApprovalRequest:
    """A request as seen by the browser that opened it; any other browser gets not found.
    Does not commit (an expiry it wrote)."""
    when = now or utcnow()
    request = _current(tx, public_id, when)
    if request is None or binding is None or request.binding_hash != _secrets.digest(binding):
        raise ApprovalNotFound("no such approval request in this browser")
    return request


def _transition(
    session: Session, request: ApprovalRequest, state: ApprovalState, now: datetime, **values: object
) -> bool:
    assert request.id is not None
    # On the table, not through the ORM (which would evaluate the WHERE clause against the
    # objects in the session): the request object is set below from what was written.
    tx = Tx(session)
    written = write_transition(tx, request.id, state, now, **values)
    session.commit()
    if written is None:
        _reload(tx, request)  # someone else changed it: show what it is now
        return False
    # It is exactly what this UPDATE wrote; set it without another SELECT (nor marking it dirty).
    for name, value in written.items():
        set_committed_value(request, name, value)
    return True


def _not_pending(request: ApprovalRequest, now: datetime) -> ApprovalRejected:
    if request.state == ApprovalState.PENDING.value and as_utc(request.expires_at) <= now:
        return ApprovalRejected("the request has expired")
    return ApprovalRejected(f"the request is already {request.state}")


def refuse(
    session: Session, citizen: CitizenRef, public_id: str, *, now: datetime | None = None
) -> ApprovalRequest:
    """The citizen said no. Commits."""
    when = now or utcnow()
    request = for_citizen(session, citizen, public_id, now=when)
    if not _transition(session, request, ApprovalState.REFUSED, when):
        raise _not_pending(request, when)
    return request


def take_result(tx: Tx, request: ApprovalRequest, *, now: datetime | None = None) -> bool:
    """Mark a completed request's result as used; True only for the first caller. Does not
    commit: the caller's commit makes it count."""
    return tx.count(_TAKE, {"request_id": request.id, "now": now or utcnow()}) == 1
