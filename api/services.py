"""The long-lived objects a running service needs, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import Engine, bindparam, select
from sqlmodel import Session

from identity.answering import Answering
from identity.certificates import CertificateChecker
from identity.errors import WebEidRejected
from identity.oauth.jws import SigningKey
from identity.oauth.keys import KeyRing, ensure_registered
from identity.ocsp_client import build_ocsp_request, ocsp_status
from keys.dbapi import Prepared
from keys.errors import KeyStoreUnavailable
from keys.keystore import FileKeyStore, KeyStore
from keys.models import CertificateRecord, utcnow
from keys.ocsp import OcspResponder, StatusRow
from keys.pki import Pki, PkiConfig, initialise, load
from keys.tsa import TimeStampAuthority

from . import db
from .group_commit import GroupCommit
from .oauth.server import OAuthServer
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
        with db.initialisation_lock(engine):  # replicas starting together take turns
            db.upgrade(engine)
            keystore = open_keystore(settings)
            try:
                keystore.check()
                with Session(engine) as session:
                    pki = initialise(session, keystore, pki_config(settings))
                    ensure_registered(session)  # so instances started together find them recorded
                    return pki
            finally:
                keystore.close()
    finally:
        engine.dispose()


_TABLE = CertificateRecord.__table__  # type: ignore[attr-defined]
# Built once: compiling a fresh query per OCSP request was half the cost of a cached answer.
_STATUS_QUERY = select(
    _TABLE.c.state, _TABLE.c.revoked_at, _TABLE.c.revocation_reason, _TABLE.c.revision
).where(_TABLE.c.serial == bindparam("serial"), _TABLE.c.issuer == bindparam("issuer"))

_STATUS_STATEMENT = Prepared(_STATUS_QUERY)  # the same, on an answer's own connection


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustAnchors:
    """Certificates Web eID card logins may chain to."""

    anchors: tuple[bytes, ...]
    """Trusted roots (DER): ours, plus the operator's extra anchors."""
    intermediates: tuple[bytes, ...]
    """Intermediate CAs (DER) that help build chains."""
    ours: frozenset[bytes]
    """CA certificates of our own PKI, whose status we ask our own OCSP responder."""


def load_trust(settings: Settings, pki: Pki) -> TrustAnchors:
    from cryptography import x509

    anchors = [pki.root.certificate.dump()]
    intermediates = [pki.citizen_ca.certificate.dump()]
    folder = settings.web_eid.extra_trust_anchors
    if folder is not None:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in (".pem", ".crt", ".cer", ".der"):
                continue
            data = path.read_bytes()
            certs = (
                x509.load_pem_x509_certificates(data)
                if b"-----BEGIN" in data
                else [x509.load_der_x509_certificate(data)]
            )
            for cert in certs:
                from cryptography.hazmat.primitives import serialization

                der = cert.public_bytes(serialization.Encoding.DER)
                (anchors if cert.issuer == cert.subject else intermediates).append(der)
    return TrustAnchors(
        anchors=tuple(anchors),
        intermediates=tuple(intermediates),
        ours=frozenset({pki.citizen_ca.certificate.dump()}),
    )


@dataclass(kw_only=True)
class Services:
    """Everything the routes use. One per process; holds no state others need."""

    settings: Settings
    engine: Engine
    keystore: KeyStore
    pki: Pki
    ocsp: OcspResponder = field(init=False)
    tsa: TimeStampAuthority = field(init=False)
    certificate_checker: CertificateChecker = field(init=False)
    oauth: OAuthServer = field(init=False)
    key_ring: KeyRing = field(init=False)
    answering: Answering = field(init=False)
    """How the citizen app's answers are checked (``identity.answering``)."""
    answer_writer: GroupCommit = field(init=False)
    """The thread that records those answers, many per commit."""
    token_writer: GroupCommit = field(init=False)
    """The thread that runs refresh grants, many per commit (``api/routes/oauth.py``)."""

    @property
    def signing_keys(self) -> dict[str, SigningKey]:
        """The keys that sign tokens now, per algorithm."""
        return self.key_ring.active()

    trust: TrustAnchors = field(init=False)

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
        self.certificate_checker = CertificateChecker(citizen_ca=self.pki.citizen_ca.certificate.dump())
        self.trust = load_trust(self.settings, self.pki)
        self.answering = Answering(
            audience=self.settings.public_url,
            checker=self.certificate_checker,
            respond=lambda request_der, now, lookup: (
                self.ocsp.respond(request_der, now=now, lookup=lookup).der
            ),
            status_statement=_STATUS_STATEMENT,
            issuer_name=self.pki.citizen_ca.name,
            fallback_lookup=self._certificate_status,
        )
        self.answer_writer = GroupCommit(self.engine, name="app-answers")
        self.token_writer = GroupCommit(self.engine, name="token-grants")
        self.key_ring = KeyRing(self.session, self.keystore)
        # Loaded now, so that its one write (the keys of ``eid init`` registered) is not made
        # inside a token group's transaction, where it would wait on that very transaction.
        self.key_ring.active()
        self.oauth = OAuthServer(issuer=self.issuer, keystore=self.keystore, keys=self.key_ring.active)

    def ask_ocsp(self, request_der: bytes, now: datetime) -> bytes:
        """Our OCSP responder, asked in process (same bytes as over HTTP)."""
        return self.ocsp.respond(request_der, now=now).der

    @property
    def issuer(self) -> str:
        """The OpenID Connect issuer: the public URL without a trailing slash."""
        return self.settings.public_url.rstrip("/")

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` of the public URL, as browsers send it."""
        parts = urlsplit(self.settings.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    def revocation_check(self, certificate: bytes, issuer: bytes) -> None:
        """Web eID: our certificates via our OCSP responder; foreign ones per settings."""
        if issuer in self.trust.ours:
            now = utcnow()
            status = ocsp_status(
                self.ask_ocsp(build_ocsp_request(certificate, issuer), now),
                certificate,
                issuer,
                [issuer],
                now,
            )
            if status != "good":
                raise WebEidRejected(f"the certificate is {status} according to our OCSP responder")
        elif self.settings.web_eid.check_foreign_revocation:
            raise WebEidRejected(
                "the card's certificate status cannot be checked: its issuer is not ours and the service "
                "fetches no URLs named by a card"
            )

    def _certificate_status(self, serial: str) -> StatusRow | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                _STATUS_QUERY, {"serial": serial, "issuer": self.pki.citizen_ca.name}
            ).first()
        if row is None:
            return None
        return StatusRow(state=row[0], revoked_at=row[1], reason=row[2], revision=row[3])

    @property
    def inline_trust(self) -> bool:
        """OCSP/TSA answers cost well under a millisecond with SQLite and file keys: answer on
        the event loop. PostgreSQL and HSM calls block longer, so those go to the thread pool."""
        return self.engine.dialect.name == "sqlite" and isinstance(self.keystore, FileKeyStore)

    def session(self) -> Session:
        # A session lives for one request. Not expiring its objects on commit saves a reload
        # SELECT for each row touched again after a commit (Authlib asks the client and the
        # token row for attributes after every write). Nothing relies on that reload: single
        # use rests on conditional UPDATEs whose row counts are checked, and the code that
        # needs a row's new database state asks for it (``session.refresh``).
        return Session(self.engine, expire_on_commit=False)

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
        self.answer_writer.close()
        self.token_writer.close()
        self.keystore.close()
        self.engine.dispose()
