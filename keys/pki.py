"""The service's own PKI: what ``eid init`` creates and what the server loads.

Hierarchy::

    Root CA (P-384, 20 years, self-signed)
     ├─ Citizen CA (P-384, 10 years)
     │   ├─ OCSP responder (P-256, 1 year, delegated, ocsp-nocheck)
     │   └─ citizen authentication and signing certificates
     ├─ TSA (P-256, 6 years, timeStamping critical)
     └─ QR seal (P-256, 6 years)

plus the OpenID Connect token signing keys (RSA 3072 for RS256, P-256 for ES256),
which have no certificate. Everything is created only when missing, so ``initialise``
can run on every start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509
from sqlmodel import Session, col, select

from .ca import CertState, Issuer, IssueRequest, Signer, issue
from .errors import PkiNotInitialised
from .keystore import KeyAlgorithm, KeyStore
from .models import CertificateRecord, as_utc, utcnow
from .profiles import AuthorityUrls, PolicyOids, Profile, extensions_for, service_name

ROOT = "root-ca"
CITIZEN_CA = "citizen-ca"
# How each CA is named in its public URLs: /ca/root.crt, /crl/citizen-ca.crl.
URL_SLUGS = {ROOT: "root", CITIZEN_CA: "citizen-ca"}

# Renew a service certificate when less than this much validity is left.
RENEW_BEFORE = timedelta(days=30)


@dataclass(frozen=True, slots=True, kw_only=True)
class PkiConfig:
    """Names and addresses the PKI is built with."""

    public_url: str
    """Base URL under which the CA, CRL, OCSP and TSA endpoints are published."""
    organisation: str = "EID Demo Authority"
    """Organisation name in the service's certificates."""
    country: str = "EE"
    """Country code in the service's certificates."""
    oid_arc: str | None = None
    """The operator's registered OID arc for its own policy identifiers, if any."""
    certificate_base_url: str | None = None
    """Base of the URLs written into certificates (AIA, CRL DP); ``public_url`` if None.
    ETSI EN 319 412-2 wants http (not https) CRL distribution points."""

    @property
    def policies(self) -> PolicyOids:
        return PolicyOids(arc=self.oid_arc)

    def url(self, path: str) -> str:
        base = self.certificate_base_url or self.public_url
        return f"{base.rstrip('/')}/{path.lstrip('/')}"

    def urls_of(self, issuer_name: str) -> AuthorityUrls:
        """Where certificates issued by ``issuer_name`` point relying parties."""
        slug = URL_SLUGS[issuer_name]
        return AuthorityUrls(
            issuer_certificate=self.url(f"ca/{slug}.crt"),
            crl=self.url(f"crl/{slug}.crl"),
            ocsp=self.url("ocsp") if issuer_name == CITIZEN_CA else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceIdentity:
    """A service key with its certificate (OCSP responder, TSA, QR seal)."""

    key_id: str
    """Key store id."""
    algorithm: KeyAlgorithm
    """Key type."""
    certificate: x509.Certificate
    """Current certificate for the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pki:
    """The loaded PKI: issuers and service identities, current certificates."""

    config: PkiConfig
    """How the PKI was configured."""
    root: Issuer
    """The root CA."""
    citizen_ca: Issuer
    """The CA that issues citizen certificates."""
    ocsp_responder: ServiceIdentity
    """Delegated OCSP responder for the Citizen CA."""
    tsa: ServiceIdentity
    """RFC 3161 time-stamping unit."""
    qr_seal: ServiceIdentity
    """Key that seals the QR tokens."""
    oidc_keys: tuple[str, ...]
    """Key ids of the OpenID Connect token signing keys."""

    def issuer(self, name: str) -> Issuer:
        return {ROOT: self.root, CITIZEN_CA: self.citizen_ca}[name]


@dataclass(frozen=True, slots=True)
class _Spec:
    profile: Profile
    algorithm: KeyAlgorithm
    issuer: str
    lifetime: timedelta
    common_name: str


_YEAR = timedelta(days=365)
_SPECS = {
    Profile.ROOT_CA: _Spec(Profile.ROOT_CA, KeyAlgorithm.EC_P384, ROOT, 20 * _YEAR, "Root CA"),
    Profile.CITIZEN_CA: _Spec(Profile.CITIZEN_CA, KeyAlgorithm.EC_P384, ROOT, 10 * _YEAR, "Citizen CA"),
    Profile.OCSP_RESPONDER: _Spec(
        Profile.OCSP_RESPONDER, KeyAlgorithm.EC_P256, CITIZEN_CA, _YEAR, "Citizen CA OCSP Responder"
    ),
    Profile.TSA: _Spec(Profile.TSA, KeyAlgorithm.EC_P256, ROOT, 6 * _YEAR, "Time-Stamping Unit"),
    Profile.QR_SEAL: _Spec(Profile.QR_SEAL, KeyAlgorithm.EC_P256, ROOT, 6 * _YEAR, "QR Seal"),
}
OIDC_KEYS = {"oidc-rs256": KeyAlgorithm.RSA_3072, "oidc-es256": KeyAlgorithm.EC_P256}


# Key usage each service profile has now. A certificate issued under an older profile
# (e.g. a QR seal without nonRepudiation, which sealing PDF reports needs) is renewed
# by the next ``eid init`` instead of failing at use.
_KEY_USAGE = {
    Profile.OCSP_RESPONDER: {"digital_signature"},
    Profile.TSA: {"digital_signature"},
    Profile.QR_SEAL: {"digital_signature", "non_repudiation"},
}


def _key_usage_current(record: CertificateRecord, profile: Profile) -> bool:
    wanted = _KEY_USAGE.get(profile)
    if wanted is None or record.der is None:
        return True
    usage = x509.Certificate.load(record.der).key_usage_value
    return usage is not None and set(usage.native) == wanted


def _current(session: Session, profile: Profile, now: datetime) -> CertificateRecord | None:
    """The newest issued, unexpired certificate of a profile."""
    rows = session.exec(
        select(CertificateRecord)
        .where(CertificateRecord.profile == profile.value)
        .where(CertificateRecord.state == CertState.ISSUED.value)
        .order_by(col(CertificateRecord.not_before).desc(), col(CertificateRecord.id).desc())
    ).all()
    for row in rows:
        if as_utc(row.not_after) > now and as_utc(row.not_before) <= now + timedelta(minutes=5):
            return row
    return None


def _key_for(keystore: KeyStore, key_id: str, algorithm: KeyAlgorithm) -> bytes:
    """The public key of ``key_id``, creating the key if it does not exist yet."""
    if keystore.has_key(key_id):
        return keystore.key_info(key_id).public_key_der
    return keystore.create_key(key_id, algorithm).public_key_der


def _issuer_from(record: CertificateRecord, name: str, keystore: KeyStore) -> Issuer:
    assert record.key_id is not None and record.der is not None
    return Issuer(
        name=name,
        key_id=record.key_id,
        algorithm=keystore.key_info(record.key_id).algorithm,
        certificate=x509.Certificate.load(record.der),
    )


def _ensure(
    session: Session,
    keystore: KeyStore,
    config: PkiConfig,
    spec: _Spec,
    issuers: dict[str, Issuer],
    now: datetime,
) -> CertificateRecord:
    current = _current(session, spec.profile, now)
    if (
        current is not None
        and as_utc(current.not_after) - now > RENEW_BEFORE
        and _key_usage_current(current, spec.profile)
    ):
        return current
    # New key on every (re)issue: a renewal is also a key rotation.
    # Microseconds: a renewal within the same second as the last issue must get a new key.
    key_id = f"{spec.profile.value}-{now:%Y%m%d%H%M%S%f}"
    public_key_der = _key_for(keystore, key_id, spec.algorithm)
    subject = service_name(
        country=config.country,
        organisation=config.organisation,
        common_name=f"{config.organisation} {spec.common_name}",
    )
    self_signed = spec.profile is Profile.ROOT_CA
    if self_signed:
        signer = Signer(name=ROOT, key_id=key_id, algorithm=spec.algorithm, subject=subject)
        not_after = now + spec.lifetime
        issuer_key_der = None
    else:
        issuer = issuers[spec.issuer]
        signer = issuer.signer
        # A certificate never outlives its issuer.
        not_after = min(now + spec.lifetime, as_utc(issuer.certificate.not_valid_after))
        issuer_key_der = issuer.public_key_der
    request = IssueRequest(
        profile=spec.profile,
        subject=subject,
        public_key_der=public_key_der,
        not_before=now - timedelta(minutes=5),
        not_after=not_after,
        extensions=extensions_for(
            spec.profile,
            subject_key_der=public_key_der,
            issuer_key_der=issuer_key_der,
            urls=None if self_signed else config.urls_of(spec.issuer),
            policies=config.policies,
        ),
        key_id=key_id,
    )
    return issue(session, keystore, signer, request, actor="eid init")


def initialise(
    session: Session, keystore: KeyStore, config: PkiConfig, *, now: datetime | None = None
) -> Pki:
    """Create whatever is missing or about to expire; return the loaded PKI. Idempotent."""
    when = now or utcnow()
    issuers: dict[str, Issuer] = {}
    for profile in (Profile.ROOT_CA, Profile.CITIZEN_CA):
        record = _ensure(session, keystore, config, _SPECS[profile], issuers, when)
        name = ROOT if profile is Profile.ROOT_CA else CITIZEN_CA
        issuers[name] = _issuer_from(record, name, keystore)
    for profile in (Profile.OCSP_RESPONDER, Profile.TSA, Profile.QR_SEAL):
        _ensure(session, keystore, config, _SPECS[profile], issuers, when)
    for key_id, algorithm in OIDC_KEYS.items():
        _key_for(keystore, key_id, algorithm)
    return load(session, keystore, config, now=when)


def load(session: Session, keystore: KeyStore, config: PkiConfig, *, now: datetime | None = None) -> Pki:
    """Load the current PKI; ``PkiNotInitialised`` when ``eid init`` has not run."""
    when = now or utcnow()
    found: dict[Profile, CertificateRecord] = {}
    for profile in _SPECS:
        record = _current(session, profile, when)
        if record is None:
            raise PkiNotInitialised(f"no valid {profile.value} certificate: run `eid init` to create the PKI")
        found[profile] = record

    def identity(profile: Profile) -> ServiceIdentity:
        record = found[profile]
        assert record.key_id is not None and record.der is not None
        return ServiceIdentity(
            key_id=record.key_id,
            algorithm=keystore.key_info(record.key_id).algorithm,
            certificate=x509.Certificate.load(record.der),
        )

    for key_id in OIDC_KEYS:
        if not keystore.has_key(key_id):
            raise PkiNotInitialised(f"key {key_id} missing: run `eid init`")
    return Pki(
        config=config,
        root=_issuer_from(found[Profile.ROOT_CA], ROOT, keystore),
        citizen_ca=_issuer_from(found[Profile.CITIZEN_CA], CITIZEN_CA, keystore),
        ocsp_responder=identity(Profile.OCSP_RESPONDER),
        tsa=identity(Profile.TSA),
        qr_seal=identity(Profile.QR_SEAL),
        oidc_keys=tuple(OIDC_KEYS),
    )
