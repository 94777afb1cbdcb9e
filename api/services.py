"""The long-lived objects a running service needs, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, select
from sqlmodel import Session

from keys.errors import KeyStoreUnavailable
from keys.keystore import FileKeyStore, KeyStore
from keys.models import CertificateRecord
from keys.ocsp import OcspResponder, StatusRow
from keys.pki import Pki, PkiConfig, initialise, load
from keys.tsa import TimeStampAuthority

from . import db
from .settings import Settings


def open_keystore(settings: Settings) -> KeyStore:
    """Open the configured key store; ``KeyStoreUnavailable`` with a clear reason if not."""
    if settings.keystore.backend == "pkcs11":
        from keys.keystore import Pkcs11KeyStore

        return Pkcs11KeyStore(
            module_path=settings.keystore.pkcs11_module,
            token_label=settings.keystore.token_label,
            pin=settings.keystore.pin.get_secret_value(),
        )
    return FileKeyStore(settings.keystore_directory, settings.keystore.passphrase.get_secret_value())


def pki_config(settings: Settings) -> PkiConfig:
    return PkiConfig(
        public_url=settings.public_url,
        organisation=settings.pki.organisation,
        country=settings.pki.country,
        oid_arc=settings.pki.oid_arc,
        certificate_base_url=settings.pki.certificate_base_url,
    )


def init_service(settings: Settings) -> Pki:
    """What ``eid init`` does: data dir, migrations, key store check, PKI. Idempotent."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.resolved_database_url)
    try:
        db.upgrade(engine)
        keystore = open_keystore(settings)
        try:
            keystore.check()
            with Session(engine) as session:
                return initialise(session, keystore, pki_config(settings))
        finally:
            keystore.close()
    finally:
        engine.dispose()


@dataclass(kw_only=True)
class Services:
    """Everything the routes use. One per process; holds no state others need."""

    settings: Settings
    engine: Engine
    keystore: KeyStore
    pki: Pki
    ocsp: OcspResponder = field(init=False)
    tsa: TimeStampAuthority = field(init=False)

    def __post_init__(self) -> None:
        self.ocsp = OcspResponder(
            issuer=self.pki.citizen_ca,
            signer=self.pki.ocsp_responder,
            keystore=self.keystore,
            lookup=self._certificate_status,
            validity=timedelta(minutes=self.settings.ocsp.validity_minutes),
        )
        self.tsa = TimeStampAuthority(
            identity=self.pki.tsa,
            keystore=self.keystore,
            policy=self.pki.config.policies.tsa,
            accuracy_ms=self.settings.tsa.accuracy_ms,
        )

    def _certificate_status(self, serial: str) -> StatusRow | None:
        table = CertificateRecord.__table__  # type: ignore[attr-defined]
        query = select(table.c.state, table.c.revoked_at, table.c.revocation_reason, table.c.revision).where(
            table.c.serial == serial, table.c.issuer == self.pki.citizen_ca.name
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        return StatusRow(state=row[0], revoked_at=row[1], reason=row[2], revision=row[3])

    def session(self) -> Session:
        return Session(self.engine)

    @classmethod
    def start(cls, settings: Settings) -> Services:
        """Open everything; raise a ``ServiceError`` with a clear message if anything is missing."""
        engine = db.make_engine(settings.resolved_database_url)
        db.upgrade(engine)
        keystore = open_keystore(settings)
        try:
            keystore.check()
            with Session(engine) as session:
                pki = load(session, keystore, pki_config(settings))
        except KeyStoreUnavailable:
            keystore.close()
            raise
        return cls(settings=settings, engine=engine, keystore=keystore, pki=pki)

    def close(self) -> None:
        self.keystore.close()
        self.engine.dispose()
