"""Envelopes: one document, several citizens' signatures, each an incremental update.

Every signature is made on the latest version of the document, so signatures are made one
after the other: a signer starts theirs (``start_signature``), which claims the envelope
(``busy_session``, a conditional update) until their signing session settles. In an
ordered envelope only the next signer may start; otherwise any signer who has not signed.
Earlier signatures stay valid: nothing certifies or locks the document (no DocMDP), and
each later revision only adds a signature field, its stamp, the DSS and time stamps.

``settle`` is called by ``signing_flow`` in the transaction that settles a session.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from identity.errors import IdentityError, InvalidPersonalCode
from identity.models import Citizen
from identity.personal_codes import parse_subject
from keys.blobs import BlobStore
from keys.models import utcnow
from signing import Level
from signing.models import EnvelopeSigner, SigningEnvelope, SigningSession

from . import idempotency

MAX_SIGNERS = 10
_SETTLED = ("completed", "refused", "expired", "failed", "deleted")


class EnvelopeNotFound(IdentityError):
    status = 404
    public = True
    slug = "envelope-not-found"
    title = "Envelope not found"


class EnvelopeRejected(IdentityError):
    status = 422
    public = True
    slug = "envelope-rejected"
    title = "Envelope cannot be created"


class NotYourTurn(IdentityError):
    status = 409
    public = True
    slug = "envelope-not-your-turn"
    title = "Not your turn to sign"


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who calls: a citizen (app or browser) or a relying party (OAuth client)."""

    citizen_id: int | None = None
    client_id: str | None = None

    @property
    def ref(self) -> str:
        return f"citizen:{self.citizen_id}" if self.citizen_id is not None else f"client:{self.client_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class NewEnvelope:
    document_name: str
    """File name of the document."""
    level: Level
    """PAdES level of every signature."""
    signer_codes: tuple[str, ...]
    """Personal codes of the required signers, in order."""
    ordered: bool
    """Sign in the listed order (else in any order)."""
    reason: str | None = None
    """Reason put in each signature."""
    visible: bool = True
    """Visible stamps, stacked one above the other."""


def create(
    db: Session,
    *,
    initiator: Principal,
    source_blob: str,
    spec: NewEnvelope,
    retention_hours: int,
    idempotency_key: tuple[str, str] | None = None,
) -> SigningEnvelope:
    """Record a new envelope for the uploaded ``source_blob``. Commits."""
    if not 1 <= len(spec.signer_codes) <= MAX_SIGNERS:
        raise EnvelopeRejected(f"an envelope needs 1 to {MAX_SIGNERS} signers")
    citizens: list[Citizen] = []
    for number, code in enumerate(spec.signer_codes, 1):
        # The message names the signer's place in the list, never the code (it may be logged).
        try:
            parsed = parse_subject(code)
        except InvalidPersonalCode:
            raise EnvelopeRejected(f"signer {number}: not a valid personal code") from None
        citizen = db.exec(
            select(Citizen).where(Citizen.country == parsed.country, Citizen.personal_code == parsed.code)
        ).first()
        if citizen is None or citizen.state != "active":
            raise EnvelopeRejected(f"signer {number} is not an active citizen of this service")
        if any(c.id == citizen.id for c in citizens):
            raise EnvelopeRejected(f"signer {number} is listed twice")
        citizens.append(citizen)
    envelope = SigningEnvelope(
        public_id=f"ev-{secrets.token_urlsafe(12)}",
        initiator=initiator.ref,
        document_name=spec.document_name[:200],
        level=spec.level.value,
        ordered=spec.ordered,
        state="open",
        source_blob=source_blob,
        current_blob=source_blob,
        reason=spec.reason,
        visible=spec.visible,
        delete_after=utcnow() + timedelta(hours=retention_hours),
    )
    db.add(envelope)
    db.flush()
    assert envelope.id is not None
    for position, citizen in enumerate(citizens):
        assert citizen.id is not None
        db.add(
            EnvelopeSigner(envelope_id=envelope.id, position=position, citizen_id=citizen.id, state="waiting")
        )
    if idempotency_key is not None:
        idempotency.complete(db, *idempotency_key, envelope.public_id)
    db.commit()
    db.refresh(envelope)
    return envelope


def signers(db: Session, envelope: SigningEnvelope) -> list[tuple[EnvelopeSigner, Citizen]]:
    rows = db.exec(
        select(EnvelopeSigner, Citizen)
        .join(Citizen, col(Citizen.id) == col(EnvelopeSigner.citizen_id))
        .where(EnvelopeSigner.envelope_id == envelope.id)
        .order_by(col(EnvelopeSigner.position))
    ).all()
    return [(signer, citizen) for signer, citizen in rows]


def find(db: Session, public_id: str, principal: Principal) -> SigningEnvelope:
    """The envelope, if ``principal`` started it or is one of its signers."""
    envelope = db.exec(select(SigningEnvelope).where(SigningEnvelope.public_id == public_id)).first()
    if envelope is None or envelope.state == "deleted":
        raise EnvelopeNotFound("no such envelope of yours")
    if envelope.initiator == principal.ref:
        return envelope
    if principal.citizen_id is not None and any(
        signer.citizen_id == principal.citizen_id for signer, _ in signers(db, envelope)
    ):
        return envelope
    raise EnvelopeNotFound("no such envelope of yours")


def visible_to(db: Session, principal: Principal) -> list[SigningEnvelope]:
    """Envelopes ``principal`` started or must sign, newest first."""
    query = select(SigningEnvelope).where(col(SigningEnvelope.state) != "deleted")
    if principal.citizen_id is not None:
        mine = select(EnvelopeSigner.envelope_id).where(EnvelopeSigner.citizen_id == principal.citizen_id)
        query = query.where(
            or_(col(SigningEnvelope.initiator) == principal.ref, col(SigningEnvelope.id).in_(mine))
        )
    else:
        query = query.where(SigningEnvelope.initiator == principal.ref)
    return list(db.exec(query.order_by(col(SigningEnvelope.id).desc()).limit(100)).all())


def claim_turn(db: Session, envelope: SigningEnvelope, citizen_id: int) -> tuple[str, int]:
    """Check it is ``citizen_id``'s turn and claim the envelope for a new signing session.

    Returns (claim token, stamp slot). Commits. ``NotYourTurn`` if another signature
    is under way, an earlier signer has not signed (ordered), or this one is done."""
    if envelope.state != "open":
        raise NotYourTurn(f"the envelope is {envelope.state}")
    listed = signers(db, envelope)
    mine = next((signer for signer, _ in listed if signer.citizen_id == citizen_id), None)
    if mine is None:
        raise EnvelopeNotFound("no such envelope of yours")
    if mine.state != "waiting":
        raise NotYourTurn("you have signed this envelope already")
    if envelope.ordered and any(s.state != "signed" for s, _ in listed if s.position < mine.position):
        raise NotYourTurn("an earlier signer has not signed yet")
    busy = envelope.busy_session
    if busy is not None and busy.startswith("sg-"):
        state = db.exec(select(SigningSession.state).where(SigningSession.public_id == busy)).first()
        if state is None or state in _SETTLED:
            busy = None  # a session that ended without settling the envelope (e.g. swept)
            _release(db, envelope, envelope.busy_session)
    token = f"claim-{secrets.token_hex(8)}"
    result = db.execute(
        update(SigningEnvelope)
        .where(col(SigningEnvelope.id) == envelope.id)
        .where(col(SigningEnvelope.busy_session).is_(None))
        .where(col(SigningEnvelope.state) == "open")
        .values(busy_session=token)
    )
    db.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise NotYourTurn("another signer is signing this envelope right now; try again in a minute")
    signed = sum(1 for s, _ in listed if s.state == "signed")
    return token, signed


def bind_claim(db: Session, envelope_id: int, token: str, session_public_id: str | None) -> None:
    """Replace the claim token by the session it became (or release it: None). Commits."""
    db.execute(
        update(SigningEnvelope)
        .where(col(SigningEnvelope.id) == envelope_id)
        .where(col(SigningEnvelope.busy_session) == token)
        .values(busy_session=session_public_id)
    )
    db.commit()


def _release(db: Session, envelope: SigningEnvelope, session_public_id: str | None) -> None:
    db.execute(
        update(SigningEnvelope)
        .where(col(SigningEnvelope.id) == envelope.id)
        .where(col(SigningEnvelope.busy_session) == session_public_id)
        .values(busy_session=None)
    )


def settle(db: Session, session: SigningSession) -> None:
    """Bring the envelope up to date with a session that has just settled. No commit."""
    envelope = db.get(SigningEnvelope, session.envelope_id)
    if envelope is None:
        return
    if envelope.state == "open" and session.state in ("completed", "refused"):
        signer = db.exec(
            select(EnvelopeSigner)
            .where(EnvelopeSigner.envelope_id == envelope.id)
            .where(EnvelopeSigner.citizen_id == session.citizen_id)
        ).one()
        if session.state == "completed" and session.signed_blob is not None:
            signer.state, signer.signed_at = "signed", utcnow()
            envelope.current_blob = session.signed_blob
            pending = db.exec(
                select(EnvelopeSigner)
                .where(EnvelopeSigner.envelope_id == envelope.id)
                .where(EnvelopeSigner.state != "signed")
                .where(col(EnvelopeSigner.id) != signer.id)
            ).first()
            if pending is None:
                envelope.state, envelope.completed_at = "completed", utcnow()
        else:
            signer.state, envelope.state = "declined", "declined"
        db.add(signer)
    if envelope.busy_session == session.public_id:
        envelope.busy_session = None
    db.add(envelope)


def cancel(db: Session, envelope: SigningEnvelope, principal: Principal) -> SigningEnvelope:
    """The initiator withdraws an open envelope. Commits."""
    if envelope.initiator != principal.ref:
        raise NotYourTurn("only whoever created the envelope can cancel it")
    if envelope.state != "open":
        raise NotYourTurn(f"the envelope is {envelope.state} and cannot be cancelled")
    envelope.state = "cancelled"
    db.add(envelope)
    db.commit()
    db.refresh(envelope)
    return envelope


def sweep(db: Session, blobs: BlobStore) -> int:
    """Delete the documents of envelopes past their retention. Commits."""
    expired = db.exec(
        select(SigningEnvelope)
        .where(col(SigningEnvelope.delete_after) <= utcnow())
        .where(col(SigningEnvelope.state) != "deleted")
    ).all()
    for envelope in expired:
        sessions = db.exec(select(SigningSession).where(SigningSession.envelope_id == envelope.id)).all()
        if any(s.state == "finishing" for s in sessions):
            continue  # being written; next sweep
        for session in sessions:
            for blob in (session.source_blob, session.signed_blob):
                if blob:
                    blobs.delete(blob)
            session.state = "deleted"
            db.add(session)
        blobs.delete(envelope.source_blob)
        blobs.delete(envelope.current_blob)
        envelope.state = "deleted"
        db.add(envelope)
    db.commit()
    return len(expired)
