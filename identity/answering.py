"""The citizen app's answers to approval requests, checked and recorded on a shared ``Tx``.

An answer is a function of a ``Tx`` that other answers share (``api.group_commit``): its
statements run on the DBAPI connection (``keys.dbapi``) and whoever runs it commits
many answers at once, one fsync for all. So an answer never raises a database error for
an ordinary outcome: a replayed token is an ``INSERT ... ON CONFLICT DO NOTHING`` that
inserted nothing, a request answered meanwhile is a conditional ``UPDATE`` that changed
nothing; a PostgreSQL error would abort the shared transaction.

An answer is authenticated one of two ways (docs/protocol.md, "Answer"): by a request
token (device, ES256, claims, binding), whose ``jti`` is used up whatever follows (a
replay is refused before anything else); or, for an approval without a token (what
``eid-app`` sends), by its signature alone (``Answering._check_signed``). Then come the
request (this citizen's, pending, unexpired), the certificate (our Citizen CA's, this
citizen's), the signature over the request's hash, the certificate's kind, validity,
state and ``good`` status from our own OCSP responder, and one conditional update. A
wrong answer fails the request, so the browser waiting on it learns at once; without a
token, only once the signature has shown that the caller holds a key certified to the
request's citizen (until then a refusal writes nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import bindparam

from keys.dbapi import Prepared, Tx
from keys.errors import ServiceError
from keys.ocsp import Lookup, StatusRow

from . import app_tokens
from .approvals import EXPIRE_ONE, ApprovalState, write_transition
from .certificates import RECORD, CertificateChecker
from .errors import AppAuthenticationFailed, ApprovalNotFound, ApprovalRejected
from .models import ApprovalRequest, Citizen

_TABLE = ApprovalRequest.__table__  # type: ignore[attr-defined]
_CITIZENS = Citizen.__table__  # type: ignore[attr-defined]
PENDING = ApprovalState.PENDING.value


class _Request(NamedTuple):
    id: int
    citizen_id: int
    kind: str
    hash: bytes
    hash_algorithm: str
    state: str
    live: Any
    """True (1 on SQLite) while ``expires_at`` is still ahead: compared in SQL, so no date
    comes back through the DBAPI in its driver-specific form."""
    citizen_public_id: str


_REQUEST = Prepared(
    sa.select(
        _TABLE.c.id,
        _TABLE.c.citizen_id,
        _TABLE.c.kind,
        _TABLE.c.hash,
        _TABLE.c.hash_algorithm,
        _TABLE.c.state,
        (_TABLE.c.expires_at > bindparam("now")).label("live"),
        _CITIZENS.c.public_id,
    )
    .join(_CITIZENS, _CITIZENS.c.id == _TABLE.c.citizen_id)
    .where(_TABLE.c.public_id == bindparam("public_id"))
)
_RECORD = Prepared(RECORD)


class _Row:
    """A DBAPI row with its columns by name (what the token and certificate checks read)."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: tuple[Any, ...]) -> None:
        self._names = names
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._values[self._names[name]]
        except KeyError:
            raise AttributeError(name) from None
        return bytes(value) if isinstance(value, memoryview) else value


def _named(statement: Prepared) -> dict[str, int]:
    return {column.key: index for index, column in enumerate(statement.statement.selected_columns)}  # type: ignore[attr-defined]


_RECORD_COLUMNS = _named(_RECORD)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppAnswer:
    """One ``POST /api/v1/app/requests/{id}`` as received."""

    authorization: str | None
    method: str
    url: str
    """The URL the request token must be bound to (public URL and path)."""
    request_id: str
    decision: str
    """``approve`` or ``refuse``."""
    certificate: bytes | None
    signature: bytes | None
    now: datetime


@dataclass(frozen=True, slots=True)
class Answered:
    id: str
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Answering:
    """What answers are checked against: our public URL, the certificate checker, and our
    OCSP responder asked with a status lookup (``respond(request, now=, lookup=)``)."""

    audience: str
    checker: CertificateChecker
    respond: Callable[[bytes, datetime, Lookup], bytes]
    status_statement: Prepared
    """The responder's status query (state, revoked_at, reason, revision by serial and issuer)."""
    issuer_name: str
    fallback_lookup: Lookup
    """The responder's own lookup, for a status this module does not read (a revocation date)."""

    def answer(self, tx: Tx, call: AppAnswer) -> Answered:
        """Check and record one answer on ``tx`` (``check``, then ``record``)."""
        return self.check(tx, call).record(tx)

    def check(self, reader: Tx, call: AppAnswer) -> Plan:
        """Every check of an answer, reading through ``reader``, writing nothing: what
        ``Plan.record`` is to write and answer. What it read may have changed by the time
        ``record`` writes, which its conditional writes find out (a replayed jti inserts
        nothing, a request answered meanwhile is not updated)."""
        if call.authorization is None:
            return self._check_signed(reader, call)
        now = call.now
        try:
            caller = app_tokens.check_token(
                call.authorization,
                app_tokens.device_reader(reader),
                method=call.method,
                url=call.url,
                audience=self.audience,
                now=now,
            )
        except ServiceError as exc:
            return Plan(call=call, caller=None, refusal=exc)
        if call.decision == "approve" and (call.certificate is None or call.signature is None):
            refusal = ApprovalRejected("an approval needs the certificate and the signature")
            return Plan(call=call, caller=caller, refusal=refusal)
        request = _read(reader, call.request_id, now)
        if request is None or request.citizen_id != caller.citizen.id:
            return Plan(call=call, caller=caller, refusal=ApprovalNotFound("no such approval request"))
        if request.state == PENDING and not request.live:
            refusal = ApprovalRejected("the request is already expired")
            return Plan(call=call, caller=caller, refusal=refusal, request=request, expire=True)
        if request.state != PENDING:
            refusal = ApprovalRejected(f"the request is already {request.state}")
            return Plan(call=call, caller=caller, refusal=refusal)
        if call.decision == "refuse":
            return Plan(call=call, caller=caller, request=request, state=ApprovalState.REFUSED)
        return self._approval(reader, call, request, caller=caller)

    def _check_signed(self, reader: Tx, call: AppAnswer) -> Plan:
        """An approval without a request token: its signature over the request's hash is
        what authenticates it (docs/protocol.md, "Answer").

        Until that signature verifies with a certificate our Citizen CA issued to the
        request's citizen, the caller is nobody in particular, so a refusal writes nothing
        and the request stays pending (a stranger who learned its id cannot make it fail).
        Once it verifies, the caller holds a key certified to the citizen, and a refusal
        (wrong kind of key, revoked, not ``good``) fails the request as with a token.
        Refusing a request proves nothing, so it still needs a request token."""
        now = call.now
        if call.decision != "approve":
            refusal: ServiceError = AppAuthenticationFailed(
                f"refusing a request needs a request token ('Authorization: {app_tokens.SCHEME} <token>')"
            )
            return Plan(call=call, caller=None, refusal=refusal)
        if call.certificate is None or call.signature is None:
            refusal = ApprovalRejected("an approval needs the certificate and the signature")
            return Plan(call=call, caller=None, refusal=refusal)
        request = _read(reader, call.request_id, now)
        if request is None:
            return Plan(call=call, caller=None, refusal=ApprovalNotFound("no such approval request"))
        if request.state != PENDING or not request.live:
            state = request.state if request.state != PENDING else "expired"
            return Plan(call=call, caller=None, refusal=ApprovalRejected(f"the request is already {state}"))
        return self._approval(reader, call, request, caller=None)

    def _approval(
        self, reader: Tx, call: AppAnswer, request: _Request, *, caller: app_tokens.AppCaller | None
    ) -> Plan:
        """The certificate (our Citizen CA's, the request's citizen's) and the signature over
        the request's hash, then the certificate's kind, validity, state and OCSP status.

        Without a request token (``caller`` None) the caller is authenticated only once the
        signature has verified: a refusal before that writes nothing. Any later refusal,
        and any refusal of a token's caller, fails the request."""
        assert call.certificate is not None and call.signature is not None
        signed = caller is None
        try:
            cert, record = self.checker.owned(
                lambda serial: _first(reader, _RECORD, _RECORD_COLUMNS, {"serial": serial}),
                citizen_public_id=request.citizen_public_id,
                certificate=call.certificate,
            )
            self.checker.verify_digest_signature(
                cert, bytes(request.hash), request.hash_algorithm, call.signature
            )
        except ApprovalRejected as exc:
            if signed:  # nobody authenticated yet
                return Plan(call=call, caller=None, refusal=exc)
            return _failed(call, caller, request, exc)
        try:
            self.checker.usable(
                cert,
                record,
                lambda request_der, when: self.respond(request_der, when, self._lookup_in(reader)),
                certificate=call.certificate,
                kind=request.kind,
                now=call.now,
            )
        except ApprovalRejected as exc:
            return _failed(call, caller, request, exc)
        return Plan(
            call=call,
            caller=caller,
            signed=signed,
            request=request,
            state=ApprovalState.COMPLETED,
            values={"certificate_serial": format(cert.serial_number, "x"), "signature": call.signature},
        )

    def _lookup_in(self, tx: Tx) -> Lookup:
        statement = self.status_statement

        def lookup(serial: str) -> StatusRow | None:
            row = tx.one(statement, {"serial": serial, "issuer": self.issuer_name})
            if row is None:
                return None
            state, revoked_at, reason, revision = row
            if revoked_at is not None:  # a date in the driver's own form: let the responder read it
                return self.fallback_lookup(serial)
            return StatusRow(state=state, revoked_at=None, reason=reason, revision=revision)

        return lookup


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A checked answer: what to write, in order, and what to answer."""

    call: AppAnswer
    caller: app_tokens.AppCaller | None
    """Who called, by their request token; None without one, or when it was refused."""
    signed: bool = False
    """No request token, and the signature verified with a certificate issued to the
    request's citizen: the caller is authenticated by it."""
    refusal: ServiceError | None = None
    """The error to answer with, after the writes below."""
    request: _Request | None = None
    expire: bool = False
    """Mark the request expired (it was pending past its expiry)."""
    state: ApprovalState | None = None
    """Move the pending request to this state (with ``values``)."""
    values: dict[str, Any] = field(default_factory=dict)

    def record(self, tx: Tx) -> Answered:
        """Write on ``tx`` (the caller commits) and answer: raises the refusal, if any,
        after writing what it entails. A token is used up by any call it authenticated,
        and a replayed one is refused (401) before anything else."""
        call = self.call
        if self.caller is None and not self.signed:  # nobody authenticated: nothing is written
            assert self.refusal is not None
            raise self.refusal
        if self.caller is not None:
            app_tokens.use_token_once(tx, self.caller, now=call.now)
        request = self.request
        moved = True
        if self.expire and request is not None:
            tx.count(EXPIRE_ONE, {"request_id": request.id, "now": call.now})
        elif self.state is not None and request is not None:
            moved = _transition(tx, request.id, self.state, call.now, **self.values)
        if self.refusal is not None:
            raise self.refusal
        if not moved:  # answered or expired since it was read: say what it is now
            current = _read(tx, call.request_id, call.now)
            if current is None or (current.state == PENDING and not current.live):
                raise ApprovalRejected("the request has expired")
            raise ApprovalRejected(f"the request is already {current.state}")
        assert self.state is not None
        return Answered(call.request_id, self.state.value)


def _failed(
    call: AppAnswer,
    caller: app_tokens.AppCaller | None,
    request: _Request,
    exc: ApprovalRejected,
) -> Plan:
    """Fail the request: its caller is authenticated, by a token or by the signature."""
    return Plan(
        call=call,
        caller=caller,
        signed=caller is None,
        refusal=exc,
        request=request,
        state=ApprovalState.FAILED,
        values={"failure_reason": str(exc)[:200]},
    )


def _first(tx: Tx, statement: Prepared, names: dict[str, int], params: dict[str, Any]) -> _Row | None:
    row = tx.one(statement, params)
    return None if row is None else _Row(names, row)


def _read(tx: Tx, public_id: str, now: datetime) -> _Request | None:
    row = tx.one(_REQUEST, {"public_id": public_id, "now": now})
    return None if row is None else _Request(*row)


def _transition(tx: Tx, request_id: int, state: ApprovalState, now: datetime, **values: Any) -> bool:
    """Move a pending, unexpired request to ``state``; False when it no longer was."""
    return write_transition(tx, request_id, state, now, **values) is not None
