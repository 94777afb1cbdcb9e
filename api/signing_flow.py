"""The signing flow, joining ``signing/`` (PDF work) and ``identity/`` (the citizen's
approval). It lives in ``api/`` because neither package may import the other.

1. ``start``: the uploaded PDF is checked and prepared with the citizen's signing
   certificate; a ``sign`` approval request carries the digest to sign.
2. ``advance``: once the app has approved, one instance claims the session (a
   conditional update) and finishes the PDF at the requested level with our TSA, OCSP
   responder and CRLs, in process.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from identity import approvals
from identity.citizens import note_activity
from identity.errors import IdentityError
from identity.models import ApprovalRequest, Citizen
from keys import crl as crls
from keys.blobs import BlobStore
from keys.ca import CertState, Issuer
from keys.dbapi import Tx
from keys.models import CertificateRecord, as_utc, utcnow
from keys.profiles import Profile
from signing import (
    InProcessRevocation,
    InProcessTimeStamper,
    Level,
    Prepared,
    StampPosition,
    StampSpec,
    async_finish,
    async_prepare,
)
from signing.errors import SigningError
from signing.models import IdempotencyRecord, SigningSession

from . import envelopes, idempotency, qr_stamps
from .services import Services

IDEMPOTENCY_TTL = timedelta(days=7)
"""How long an Idempotency-Key is remembered."""

FINISHING_LEASE = timedelta(minutes=2)
"""A session still ``finishing`` this long after the approval was answered was abandoned
(the instance finishing it died: finishing takes seconds). Polling it finishes it again;
two finishers are harmless, since only one conditional ``finishing`` update wins."""


class NoSigningCertificate(IdentityError):
    status = 409
    public = True
    slug = "no-signing-certificate"
    title = "No valid signing certificate"


class SessionNotFound(IdentityError):
    status = 404
    public = True
    slug = "signing-session-not-found"
    title = "Signing session not found"


@dataclass(frozen=True, slots=True, kw_only=True)
class Started:
    session: SigningSession
    """The stored session."""
    verification_code: str
    """Shown to the citizen on the page and in the app."""


def _signing_certificate(db: Session, citizen: Citizen) -> CertificateRecord:
    record = db.exec(
        select(CertificateRecord)
        .where(CertificateRecord.owner == citizen.public_id)
        .where(CertificateRecord.profile == Profile.CITIZEN_SIGN.value)
        .where(CertificateRecord.state == CertState.ISSUED.value)
        .order_by(col(CertificateRecord.id).desc())
    ).first()
    if record is None or record.der is None:
        raise NoSigningCertificate("you have no valid signing certificate: enrol the app first")
    return record


async def start(
    services: Services,
    blobs: BlobStore,
    *,
    citizen_id: int,
    initiator: str,
    source_blob: str,
    source_sha256: bytes,
    document_name: str,
    level: Level,
    reason: str | None,
    location: str | None,
    visible: bool,
    envelope_id: int | None = None,
    stamp_slot: int = 0,
    stamp_page: int = -1,
    stamp_position: StampPosition = StampPosition.BOTTOM_RIGHT,
    idempotency_key: tuple[str, str] | None = None,
) -> Started:
    """Prepare ``source_blob`` for ``citizen_id``'s signature and open the approval.

    ``envelope_id`` ties the session to an envelope (its document version);
    ``stamp_slot`` stacks the visible stamp above earlier signers' ones; ``stamp_page``
    (an index, negative from the end) and ``stamp_position`` place it;
    ``idempotency_key`` (principal, key) is completed in the same transaction.

    Database work runs in the thread pool, like every route's: a write may wait for the
    SQLite write gate or a PostgreSQL row lock, and must not stop the event loop."""

    def signer() -> tuple[bytes, str]:
        with services.session() as db:
            citizen = db.get(Citizen, citizen_id)
            assert citizen is not None
            certificate = _signing_certificate(db, citizen)
            assert certificate.der is not None
            return certificate.der, f"{citizen.given_name} {citizen.family_name}"

    cert_der, name = await run_in_threadpool(signer)
    stamp, issued = None, None
    if visible:
        issued = qr_stamps.signature_token(
            services,
            document_sha256=source_sha256,
            document_length=blobs.path(source_blob).stat().st_size,
            signer_name=name,
        )
        stamp = StampSpec(
            signer_name=name, slot=stamp_slot, qr_url=issued.url, page=stamp_page, position=stamp_position
        )
    prepared = await async_prepare(
        blobs.path(source_blob),
        blobs.directory,
        signer_certificate=cert_der,
        chain=[services.pki.citizen_ca.certificate.dump()],
        level=level,
        stamp=stamp,
        reason=reason,
        location=location,
        # A single signer's upload is this session's alone: the finish turns it into the
        # signed document. Envelope versions are shared, so their finish copies.
        consume_source=envelope_id is None,
    )

    def record() -> Started:
        with services.session() as db:
            citizen = db.get(Citizen, citizen_id)
            assert citizen is not None
            # Committed below with the signing session it belongs to.
            request = approvals.open_request(
                Tx(db),
                citizen=citizen,
                kind=approvals.ApprovalKind.SIGN,
                hash_value=prepared.digest_to_sign,
                hash_algorithm=prepared.hash_algorithm.value,
                display_text=f"Sign {document_name}"[:200],
                binding=None,
            )
            row = SigningSession(
                public_id=f"sg-{request.public_id[3:]}",
                citizen_id=citizen_id,
                initiator=initiator,
                document_name=document_name[:200],
                level=prepared.level.value,
                state="awaiting_signature",
                source_blob=source_blob,
                prepared=prepared.to_bytes(),
                approval_id=request.public_id,
                envelope_id=envelope_id,
                delete_after=utcnow() + timedelta(hours=services.settings.limits.document_retention_hours),
            )
            db.add(row)
            if issued is not None:
                qr_stamps.record(db, issued)
            if idempotency_key is not None:
                idempotency.complete(db, *idempotency_key, row.public_id)
            db.commit()
            db.refresh(row)
            return Started(session=row, verification_code=request.verification_code)

    return await run_in_threadpool(record)


def find(db: Session, public_id: str, citizen_id: int) -> SigningSession:
    row = db.exec(select(SigningSession).where(SigningSession.public_id == public_id)).first()
    if row is None or row.citizen_id != citizen_id:
        raise SessionNotFound("no such signing session of yours")
    return row


def _claim(db: Session, row: SigningSession, state_from: str, state_to: str, **values: object) -> bool:
    result = db.execute(
        update(SigningSession)
        .where(col(SigningSession.id) == row.id)
        .where(col(SigningSession.state) == state_from)
        .values(state=state_to, **values)
    )
    db.commit()
    db.refresh(row)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def advance(services: Services, blobs: BlobStore, public_id: str, citizen_id: int) -> SigningSession:
    """Move the session on from the approval's state; finish the PDF once approved."""
    step = await run_in_threadpool(_next_step, services, public_id, citizen_id)
    if isinstance(step, SigningSession):
        return step
    return await _finish(services, blobs, public_id, citizen_id, step)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Claimed:
    """A session this caller has claimed to finish."""

    signature: bytes
    prepared: Prepared
    consume_source: bool
    """The upload is the session's alone (no envelope): it becomes the signed document."""


def _claimed(row: SigningSession, signature: bytes) -> _Claimed:
    return _Claimed(
        signature=signature,
        prepared=Prepared.from_bytes(row.prepared),
        consume_source=row.envelope_id is None,
    )


def signed_blob_id(public_id: str) -> str:
    """The signed document's blob of a session that consumes its upload: fixed, so a
    finish retried after a crash finds the output of the one before."""
    return hashlib.sha256(f"signed:{public_id}".encode()).hexdigest()[:32]


def _next_step(services: Services, public_id: str, citizen_id: int) -> SigningSession | _Claimed:
    """The session as it now stands, or what this caller has claimed to finish."""
    with services.session() as db:
        row = find(db, public_id, citizen_id)
        if row.state == "finishing" and (abandoned := _abandoned(db, row)) is not None:
            return abandoned
        if row.state != "awaiting_signature":
            return row
        request = db.exec(select(ApprovalRequest).where(ApprovalRequest.public_id == row.approval_id)).first()
        assert request is not None
        approvals_state = request.state
        if approvals_state == "pending" and request.expires_at <= utcnow():
            approvals_state = "expired"
        if approvals_state in ("refused", "expired", "failed"):
            if _claim(db, row, "awaiting_signature", approvals_state, failure_reason=request.failure_reason):
                _settle_envelope(db, row)
            return row
        if approvals_state != "completed" or request.signature is None:
            return row
        if not _claim(db, row, "awaiting_signature", "finishing"):
            return row
        return _claimed(row, request.signature)


def _abandoned(db: Session, row: SigningSession) -> _Claimed | None:
    """The signature and prepared PDF of a session left ``finishing`` by a dead instance."""
    request = db.exec(select(ApprovalRequest).where(ApprovalRequest.public_id == row.approval_id)).first()
    if request is None or request.signature is None or request.answered_at is None:
        return None
    if as_utc(request.answered_at) > utcnow() - FINISHING_LEASE:
        return None
    return _claimed(row, request.signature)


async def _finish(
    services: Services,
    blobs: BlobStore,
    public_id: str,
    citizen_id: int,
    claimed: _Claimed,
) -> SigningSession:
    try:
        out = blobs.path(signed_blob_id(public_id) if claimed.consume_source else blobs.new_id())
        await async_finish(
            claimed.prepared,
            claimed.signature,
            out=out,
            timestamper=InProcessTimeStamper(lambda der: services.tsa.respond(der, now=utcnow()).der),
            validation=revocation_source(services),
            consume_source=claimed.consume_source,
        )
        state, signed, reason = "completed", out.name, None
    except SigningError as exc:
        state, signed, reason = "failed", None, str(exc)[:300]

    def settle() -> SigningSession:
        with services.session() as db:
            row = find(db, public_id, citizen_id)
            if not _claim(db, row, "finishing", state, signed_blob=signed, failure_reason=reason):
                if signed is not None and signed != row.signed_blob:
                    blobs.delete(signed)  # another finisher won: ours is a spare copy
                return row
            _settle_envelope(db, row)
            if state == "completed":
                note_activity(db, citizen_id, "signature", f"Signed {row.document_name} ({row.level})")
                db.commit()
            db.refresh(row)
            return row

    return await run_in_threadpool(settle)


def _settle_envelope(db: Session, row: SigningSession) -> None:
    if row.envelope_id is not None:
        envelopes.settle(db, row)
        db.commit()
        db.refresh(row)


def revocation_source(services: Services) -> InProcessRevocation:
    pki = services.pki

    def current_crls(*issuers: Issuer) -> list[bytes]:
        with services.session() as db:
            return [crls.current(db, services.keystore, issuer).der for issuer in issuers]

    return InProcessRevocation(
        trust_roots=(pki.root.certificate.dump(),),
        certificates=(
            pki.citizen_ca.certificate.dump(),
            pki.tsa.certificate.dump(),
            pki.ocsp_responder.certificate.dump(),
        ),
        ocsp_issuers=(pki.citizen_ca.certificate.dump(),),
        ask_ocsp=lambda der: services.ocsp.respond(der, now=utcnow()).der,
        signer_status=services.ocsp.status,
        crls=lambda: current_crls(pki.root, pki.citizen_ca),
        root_crls=lambda: current_crls(pki.root),
    )


async def wait_until_settled(
    services: Services, blobs: BlobStore, public_id: str, citizen_id: int
) -> SigningSession:
    """Used by the long-poll: advance until the state changes or a few seconds pass."""
    row = await advance(services, blobs, public_id, citizen_id)
    for _ in range(20):
        if row.state != "awaiting_signature":
            break
        await asyncio.sleep(0.25)
        row = await advance(services, blobs, public_id, citizen_id)
    return row


def sweep(services: Services, blobs: BlobStore) -> int:
    """Delete documents of sessions past their retention; returns how many sessions."""
    now = utcnow()
    swept = 0
    with services.session() as db:
        expired = db.exec(
            select(SigningSession)
            .where(col(SigningSession.delete_after) <= now)
            .where(col(SigningSession.state) != "deleted")
            .where(col(SigningSession.envelope_id).is_(None))  # envelopes sweep their own
        ).all()
        for row in expired:
            if row.state == "finishing" and _abandoned(db, row) is None:
                continue  # another instance is writing it; next sweep (unless it died)
            prepared_path = Prepared.from_bytes(row.prepared).prepared_path if row.prepared else None
            # A finish that died after making the signed document but before recording
            # it left it under its fixed name.
            for blob in (row.source_blob, row.signed_blob, signed_blob_id(row.public_id)):
                if blob:
                    blobs.delete(blob)
            if prepared_path is not None and prepared_path.parent == blobs.directory:
                prepared_path.unlink(missing_ok=True)
            if _claim(db, row, row.state, "deleted"):
                swept += 1
        swept += envelopes.sweep(db, blobs)
        db.execute(
            delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) <= now - IDEMPOTENCY_TTL)
        )
        db.commit()
    return swept
