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
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from identity import approvals
from identity.citizens import note_activity
from identity.errors import IdentityError
from identity.models import ApprovalRequest, Citizen
from keys import crl as crls
from keys.blobs import BlobStore
from keys.ca import CertState
from keys.models import CertificateRecord, utcnow
from keys.profiles import Profile
from signing import (
    InProcessRevocation,
    InProcessTimeStamper,
    Level,
    Prepared,
    StampSpec,
    async_finish,
    async_prepare,
)
from signing.errors import SigningError
from signing.models import SigningSession

from .services import Services

RETENTION = timedelta(hours=24)
"""Default; the setting EID_LIMITS__DOCUMENT_RETENTION_HOURS overrides it."""


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
    document_name: str,
    level: Level,
    reason: str | None,
    location: str | None,
    visible: bool,
) -> Started:
    with services.session() as db:
        citizen = db.get(Citizen, citizen_id)
        assert citizen is not None
        certificate = _signing_certificate(db, citizen)
        cert_der, name = certificate.der, f"{citizen.given_name} {citizen.family_name}"
    assert cert_der is not None
    stamp = StampSpec(signer_name=name) if visible else None
    prepared = await async_prepare(
        blobs.path(source_blob),
        blobs.directory,
        signer_certificate=cert_der,
        chain=[services.pki.citizen_ca.certificate.dump()],
        level=level,
        stamp=stamp,
        reason=reason,
        location=location,
    )
    with services.session() as db:
        citizen = db.get(Citizen, citizen_id)
        assert citizen is not None
        request = approvals.open_request(
            db,
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
            delete_after=utcnow() + timedelta(hours=services.settings.limits.document_retention_hours),
        )
        db.add(row)
        db.commit()
        db.refresh(row)
        return Started(session=row, verification_code=request.verification_code)


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
    with services.session() as db:
        row = find(db, public_id, citizen_id)
        if row.state != "awaiting_signature":
            return row
        request = db.exec(select(ApprovalRequest).where(ApprovalRequest.public_id == row.approval_id)).first()
        assert request is not None
        approvals_state = request.state
        if approvals_state == "pending" and request.expires_at <= utcnow():
            approvals_state = "expired"
        if approvals_state in ("refused", "expired", "failed"):
            _claim(
                db,
                row,
                "awaiting_signature",
                approvals_state if approvals_state != "failed" else "failed",
                failure_reason=request.failure_reason,
            )
            return row
        if approvals_state != "completed" or request.signature is None:
            return row
        if not _claim(db, row, "awaiting_signature", "finishing"):
            return row
        signature, prepared = request.signature, Prepared.from_bytes(row.prepared)
        db.expunge(row)
    try:
        out = blobs.path(blobs.new_id())
        await async_finish(
            prepared,
            signature,
            out=out,
            timestamper=InProcessTimeStamper(lambda der: services.tsa.respond(der, now=utcnow()).der),
            validation=_revocation(services),
        )
        state, signed, reason = "completed", out.name, None
    except SigningError as exc:
        state, signed, reason = "failed", None, str(exc)[:300]
    with services.session() as db:
        row = find(db, public_id, citizen_id)
        _claim(db, row, "finishing", state, signed_blob=signed, failure_reason=reason)
        if state == "completed":
            note_activity(db, citizen_id, "signature", f"Signed {row.document_name} ({row.level})")
            db.commit()
        db.refresh(row)
        return row


def _revocation(services: Services) -> InProcessRevocation:
    pki = services.pki

    def current_crls() -> list[bytes]:
        with services.session() as db:
            return [crls.current(db, services.keystore, issuer).der for issuer in (pki.root, pki.citizen_ca)]

    return InProcessRevocation(
        trust_roots=(pki.root.certificate.dump(),),
        certificates=(
            pki.citizen_ca.certificate.dump(),
            pki.tsa.certificate.dump(),
            pki.ocsp_responder.certificate.dump(),
        ),
        ocsp_issuers=(pki.citizen_ca.certificate.dump(),),
        ask_ocsp=lambda der: services.ocsp.respond(der, now=utcnow()).der,
        crls=current_crls,
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
        ).all()
        for row in expired:
            if row.state == "finishing":
                continue  # another instance is writing it; next sweep
            prepared_path = Prepared.from_bytes(row.prepared).prepared_path if row.prepared else None
            for blob in (row.source_blob, row.signed_blob):
                if blob:
                    blobs.delete(blob)
            if prepared_path is not None and prepared_path.parent == blobs.directory:
                prepared_path.unlink(missing_ok=True)
            if _claim(db, row, row.state, "deleted"):
                swept += 1
    return swept
