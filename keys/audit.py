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

from sqlalchemy import bindparam, func, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from .dbapi import Prepared, Tx
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


# Prepared (``keys.dbapi``): an append is two small statements on every login, so they
# skip the ORM's per-statement work; the SQL is the same.
_LAST_HASH = Prepared(select(col(AuditEntry.hash)).order_by(col(AuditEntry.id).desc()).limit(1))
_PG_APPEND_LOCK = Prepared(select(func.pg_advisory_xact_lock(bindparam("key"))))
_COLUMNS = ("at", "actor", "action", "target", "details", "prev_hash", "hash")
_INSERT = Prepared(
    insert(AuditEntry.__table__).values(  # type: ignore[attr-defined]
        {name: bindparam(name) for name in _COLUMNS}
    )
)


def record(
    session: Session, *, actor: str, action: str, target: str, details: dict[str, Any] | None = None
) -> AuditEntry:
    """Append an entry inside the caller's transaction (written, not committed). The entry
    returned is not in the session (its ``id`` is None): read entries back to see them.

    The caller's commit may still lose a race for the predecessor; ``append`` is the
    variant that owns its transaction and retries.
    """
    # Callers count on what they added before being written (and their ids set) by now, as
    # an ORM append would have flushed it.
    session.flush()
    return record_in(Tx(session), actor=actor, action=action, target=target, details=details)


def record_in(
    tx: Tx, *, actor: str, action: str, target: str, details: dict[str, Any] | None = None
) -> AuditEntry:
    """``record`` on a transaction of prepared statements (``keys.dbapi``)."""
    if tx.dialect.name == "postgresql":
        # Concurrent transactions would read the same last entry and the later one would
        # fail on the unique prev_hash, deep inside the caller's work (a 500 for an
        # enrolment, say). One transaction-scoped lock makes appends take turns; it is
        # released at the caller's commit or rollback. SQLite already has one writer.
        tx.one(_PG_APPEND_LOCK, {"key": _APPEND_LOCK})
    last = tx.one(_LAST_HASH, {})
    entry = AuditEntry(
        at=utcnow(),
        actor=actor,
        action=action,
        target=target,
        details=json.dumps(details or {}, sort_keys=True, ensure_ascii=False),
        prev_hash=last[0] if last else GENESIS,
    )
    entry.hash = _digest(entry)
    tx.count(_INSERT, {name: getattr(entry, name) for name in _COLUMNS})
    return entry


def append(
    session: Session, *, actor: str, action: str, target: str, details: dict[str, Any] | None = None
) -> AuditEntry:
    """Append and commit, retrying when another writer took the same predecessor."""
    # ``record`` writes on the DBAPI connection, so a lost race raises the driver's own error.
    collision = (IntegrityError, session.get_bind().dialect.loaded_dbapi.IntegrityError)
    for _ in range(5):
        try:
            entry = record(session, actor=actor, action=action, target=target, details=details)
            session.commit()
            return entry
        except collision:
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
