"""Certificate revocation lists, one per issuing CA.

Every CRL ever published is kept with a number unique per issuer, so numbers only go
up, even when two instances race to publish (the loser reloads the winner's CRL).
A new CRL is published on every revocation and whenever the current one is past half
its validity.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import sqlalchemy as sa
from asn1crypto import crl
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from ._x509 import key_identifier, sign_structure, signature_algorithm, x509_time
from .ca import CertState, Issuer
from .keystore import KeyStore
from .models import CertificateRecord, CrlRecord, as_utc, utcnow

DEFAULT_VALIDITY = timedelta(hours=24)


_TABLE = CrlRecord.__table__  # type: ignore[attr-defined]
# Which CRL is the latest: three small columns, not the (possibly large) DER.
_LATEST = (
    sa.select(_TABLE.c.id, _TABLE.c.number, _TABLE.c.this_update)
    .where(_TABLE.c.issuer == sa.bindparam("issuer"))
    .order_by(_TABLE.c.number.desc())
    .limit(1)
)
_BY_ID = select(CrlRecord).where(col(CrlRecord.id) == sa.bindparam("id"))
_loaded: dict[tuple[str, str], tuple[tuple[object, ...], CrlRecord]] = {}
_loaded_lock = threading.Lock()


def _latest(session: Session, issuer: str) -> CrlRecord | None:
    """The issuer's latest CRL. A published CRL never changes, so its record is loaded
    once per process (per database and issuer) and reused while it is the latest; which
    one is the latest is asked every time, so a new CRL (a revocation) is seen at once.
    Signing asks for the current CRLs on every signature: loading the record was a tenth
    of a 1 MB signature's time."""
    found = session.execute(_LATEST, {"issuer": issuer}).first()
    if found is None:
        return None
    place = (str(session.get_bind().engine.url), issuer)
    identity = tuple(found)
    with _loaded_lock:
        kept = _loaded.get(place)
    if kept is not None and kept[0] == identity:
        return kept[1]
    row = session.exec(_BY_ID, params={"id": found.id}).first()
    if row is None:
        return None
    # A copy outside any session: callers read it after their session has closed.
    record = CrlRecord(
        id=row.id,
        issuer=row.issuer,
        number=row.number,
        this_update=row.this_update,
        next_update=row.next_update,
        der=row.der,
    )
    with _loaded_lock:
        _loaded[place] = (identity, record)
    return record


def build(
    session: Session,
    keystore: KeyStore,
    issuer: Issuer,
    *,
    number: int,
    now: datetime,
    validity: timedelta,
) -> bytes:
    """Sign a full CRL listing every revoked certificate of ``issuer``."""
    revoked = session.exec(
        select(CertificateRecord)
        .where(CertificateRecord.issuer == issuer.name)
        .where(CertificateRecord.state == CertState.REVOKED.value)
        .order_by(col(CertificateRecord.revoked_at))
    ).all()
    entries = []
    for record in revoked:
        assert record.revoked_at is not None
        entries.append(
            {
                "user_certificate": int(record.serial, 16),
                "revocation_date": x509_time(as_utc(record.revoked_at).replace(microsecond=0)),
                "crl_entry_extensions": [
                    {
                        "extn_id": "crl_reason",
                        "critical": False,
                        "extn_value": record.revocation_reason or "unspecified",
                    }
                ],
            }
        )
    this_update = now.replace(microsecond=0)
    tbs = crl.TbsCertList(
        {
            "version": "v2",
            "signature": {"algorithm": signature_algorithm(issuer.algorithm)[0]},
            "issuer": issuer.subject,
            "this_update": x509_time(this_update),
            "next_update": x509_time(this_update + validity),
            "revoked_certificates": entries or None,
            "crl_extensions": [
                {
                    "extn_id": "authority_key_identifier",
                    "critical": False,
                    "extn_value": {"key_identifier": key_identifier(issuer.public_key_der)},
                },
                {"extn_id": "crl_number", "critical": False, "extn_value": number},
            ],
        }
    )

    algorithm, signature = sign_structure(keystore, issuer.key_id, issuer.algorithm, tbs)
    signed = crl.CertificateList(
        {"tbs_cert_list": tbs, "signature_algorithm": algorithm, "signature": signature}
    )
    return bytes(signed.dump())


def publish(
    session: Session,
    keystore: KeyStore,
    issuer: Issuer,
    *,
    now: datetime | None = None,
    validity: timedelta = DEFAULT_VALIDITY,
) -> CrlRecord:
    """Sign and store the next CRL of ``issuer``. Commits; retries if another instance won."""
    when = now or utcnow()
    for _ in range(5):
        highest = session.exec(
            select(func.max(CrlRecord.number)).where(CrlRecord.issuer == issuer.name)
        ).one()
        number = (highest or 0) + 1
        der = build(session, keystore, issuer, number=number, now=when, validity=validity)
        record = CrlRecord(
            issuer=issuer.name,
            number=number,
            this_update=when,
            next_update=when + validity,
            der=der,
        )
        session.add(record)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            continue
        session.refresh(record)
        return record
    latest = _latest(session, issuer.name)
    assert latest is not None
    return latest


def current(
    session: Session,
    keystore: KeyStore,
    issuer: Issuer,
    *,
    now: datetime | None = None,
    validity: timedelta = DEFAULT_VALIDITY,
) -> CrlRecord:
    """The CRL to serve: the latest one, or a new one when it is past half its validity."""
    when = now or utcnow()
    latest = _latest(session, issuer.name)
    if latest is not None:
        this_update, next_update = as_utc(latest.this_update), as_utc(latest.next_update)
        if when < this_update + (next_update - this_update) / 2:
            return latest
    return publish(session, keystore, issuer, now=when, validity=validity)


def revoked_serials(der: bytes) -> list[int]:
    """Serials listed in a DER CRL (used by tests and the CLI)."""
    parsed = crl.CertificateList.load(der)
    return [entry["user_certificate"].native for entry in parsed["tbs_cert_list"]["revoked_certificates"]]
