"""Token signing keys and their rotation.

The newest key of each algorithm signs; keys it replaced stay in the JWKS until every
token they signed has expired (``RETAIN``), so relying parties never meet a ``kid`` they
cannot resolve. Every instance reads the list from the database (cached briefly), so a
rotation on one instance reaches the others within ``CACHE_SECONDS``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from keys.keystore import KeyAlgorithm, KeyStore
from keys.models import as_utc, utcnow
from keys.pki import OIDC_KEYS

from .jws import SigningKey
from .models import SigningKeyRecord

RETAIN = timedelta(days=1)
CACHE_SECONDS = 30
_ALGS = {"RS256": KeyAlgorithm.RSA_3072, "ES256": KeyAlgorithm.EC_P256}
_INITIAL = {"RS256": "oidc-rs256", "ES256": "oidc-es256"}
assert set(_INITIAL.values()) == set(OIDC_KEYS)


def ensure_registered(session: Session) -> None:
    """Record the keys ``eid init`` created, once; each record added is committed.

    Instances started together may both find a key unrecorded; the one whose insert
    loses (a unique ``key_id``) takes the other's row as its own instead of failing.
    """
    recorded = set(session.exec(select(SigningKeyRecord.key_id)).all())
    for alg, key_id in _INITIAL.items():
        if key_id in recorded:
            continue
        session.add(SigningKeyRecord(key_id=key_id, alg=alg, created_at=datetime(2000, 1, 1, tzinfo=UTC)))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()


def rotate(session: Session, keystore: KeyStore, *, now: datetime | None = None) -> list[SigningKeyRecord]:
    """New keys for both algorithms; the old ones are kept published for ``RETAIN``. Commits."""
    when = now or utcnow()
    ensure_registered(session)
    created = []
    for alg, algorithm in _ALGS.items():
        for old in session.exec(
            select(SigningKeyRecord)
            .where(SigningKeyRecord.alg == alg)
            .where(col(SigningKeyRecord.retire_at).is_(None))
        ):
            old.retire_at = when + RETAIN
            session.add(old)
        key_id = f"oidc-{alg.lower()}-{when:%Y%m%d%H%M%S%f}"
        keystore.create_key(key_id, algorithm)
        record = SigningKeyRecord(key_id=key_id, alg=alg, created_at=when)
        session.add(record)
        created.append(record)
    session.commit()
    return created


class KeyRing:
    """Active and published signing keys, read from the database at most every few seconds."""

    def __init__(self, engine_session: type[Session] | object, keystore: KeyStore) -> None:
        self._new_session = engine_session
        self._keystore = keystore
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._registered = False
        self._active: dict[str, SigningKey] = {}
        self._published: list[SigningKey] = []

    def _refresh(self) -> None:
        now = utcnow()
        with self._new_session() as session:  # type: ignore[operator]
            # Registered once; later reloads only read (they may run inside a token group's
            # transaction: api.group_commit).
            if not self._registered:
                ensure_registered(session)
                self._registered = True
            rows = list(session.exec(select(SigningKeyRecord).order_by(col(SigningKeyRecord.created_at))))
        active: dict[str, SigningKey] = {}
        published = []
        for row in rows:
            if row.retire_at is not None and as_utc(row.retire_at) <= now:
                continue
            key = SigningKey.load(self._keystore, row.key_id)
            published.append(key)
            if row.retire_at is None:
                active[row.alg] = key
        self._active, self._published = active, published

    def _current(self) -> None:
        with self._lock:
            if time.monotonic() - self._loaded_at > CACHE_SECONDS:
                self._refresh()
                self._loaded_at = time.monotonic()

    def active(self) -> dict[str, SigningKey]:
        """The key that signs now, per algorithm."""
        self._current()
        return self._active

    def published(self) -> list[SigningKey]:
        """Every key a relying party may still meet."""
        self._current()
        return self._published

    def by_kid(self, kid: str | None) -> SigningKey | None:
        return next((k for k in self.published() if k.kid == kid), None)
