"""The append-only audit log: each entry is chained to the hash of the one before.

An entry's hash covers its time, actor, action, target, details and the previous
hash, so removing or editing any entry breaks every hash after it. On PostgreSQL appends
take turns under an advisory lock; should two writers still race for the same predecessor,
they collide on the unique ``prev_hash`` and ``append``'s loser retries.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from .errors import KeyServiceError
from .models import AuditEntry, as_utc, utcnow

GENESIS = "0" * 64
_APPEND_LOCK = 0x6569_6461_7564_6974  # "eidaudit": the PostgreSQL advisory lock for appends


def _digest(entry: AuditEntry) -> str:
    material = json.dumps(
        [
            as_utc(entry.at).isoformat(),
            entry.actor,
            entry.action,
            entry.target,
            entry.details,
            entry.prev_hash,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def record(
    session: Session, *, actor: str, action: str, target: str, details: dict[str, Any] | None = None
) -> AuditEntry:
    """Append an entry inside the caller's transaction (flushed, not committed).

    The caller's commit may still lose a race for the predecessor; ``append`` is the
    variant that owns its transaction and retries.
    """
    if session.get_bind().dialect.name == "postgresql":
        # Concurrent transactions would read the same last entry and the later one would
        # fail on the unique prev_hash at flush, deep inside the caller's work (a 500 for
        # an enrolment, say). One transaction-scoped lock makes appends take turns; it is
        # released at the caller's commit or rollback. SQLite already has one writer.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK})
    last = session.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(1)).first()
    entry = AuditEntry(
        at=utcnow(),
        actor=actor,
        action=action,
        target=target,
        details=json.dumps(details or {}, sort_keys=True, ensure_ascii=False),
        prev_hash=last.hash if last else GENESIS,
    )
    entry.hash = _digest(entry)
    session.add(entry)
    session.flush()
    return entry


def append(
    session: Session, *, actor: str, action: str, target: str, details: dict[str, Any] | None = None
) -> AuditEntry:
    """Append and commit, retrying when another writer took the same predecessor."""
    for _ in range(5):
        try:
            entry = record(session, actor=actor, action=action, target=target, details=details)
            session.commit()
            return entry
        except IntegrityError:
            session.rollback()
    raise KeyServiceError("audit log: could not append after 5 attempts")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReport:
    """The outcome of checking the whole audit chain."""

    entries: int
    """How many entries were checked."""
    broken_at: int | None
    """Id of the first entry whose link or hash is wrong, or None when intact."""
    reason: str | None
    """What is wrong with that entry."""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def verify_chain(session: Session) -> ChainReport:
    """Recompute every hash and link, oldest first."""
    previous = GENESIS
    count = 0
    for entry in session.exec(select(AuditEntry).order_by(col(AuditEntry.id))):
        count += 1
        if entry.prev_hash != previous:
            return ChainReport(entries=count, broken_at=entry.id, reason="link to previous entry broken")
        if _digest(entry) != entry.hash:
            return ChainReport(entries=count, broken_at=entry.id, reason="entry content altered")
        previous = entry.hash
    return ChainReport(entries=count, broken_at=None, reason=None)
