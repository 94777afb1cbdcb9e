"""Issuing citizen certificates from a public key and a proof of possession.

The citizen's app generates its key pair itself; the service only ever sees the public
key. Before issuing, the app proves it holds the private key by signing a challenge the
service gave it (``verify_possession``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlmodel import Session

from .ca import IssueRequest, issue
from .errors import CertificateRequestRejected
from .keystore import KeyStore
from .models import CertificateRecord, as_utc, utcnow
from .pki import Pki
from .profiles import CitizenSubject, Profile, extensions_for

CITIZEN_CERT_LIFETIME = timedelta(days=5 * 365)

_EC_CURVES = {"secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384}


class Purpose(StrEnum):
    """Which of a citizen's two key pairs a certificate is for."""

    AUTHENTICATION = "auth"
    SIGNING = "sign"

    @property
    def profile(self) -> Profile:
        return Profile.CITIZEN_AUTH if self is Purpose.AUTHENTICATION else Profile.CITIZEN_SIGN


def load_citizen_key(public_key_der: bytes) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """Parse a SubjectPublicKeyInfo and accept only key types we issue for."""
    try:
        key = serialization.load_der_public_key(public_key_der)
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateRequestRejected("the public key is not a valid DER SubjectPublicKeyInfo") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _EC_CURVES:
            raise CertificateRequestRejected(f"EC curve {key.curve.name} is not accepted: use P-256 or P-384")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CertificateRequestRejected("RSA keys must be at least 2048 bits")
        return key
    raise CertificateRequestRejected("only EC (P-256, P-384) and RSA keys are accepted")


def verify_possession(public_key_der: bytes, challenge: bytes, signature: bytes) -> None:
    """Check that ``signature`` over ``challenge`` was made with the private key.

    EC keys sign with ECDSA and the curve's hash (SHA-256 for P-256, SHA-384 for P-384),
    DER encoded; RSA keys with PKCS#1 v1.5 and SHA-256.
    """
    key = load_citizen_key(public_key_der)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, challenge, ec.ECDSA(_EC_CURVES[key.curve.name]()))
        else:
            key.verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise CertificateRequestRejected(
            "proof of possession failed: the signature does not verify"
        ) from None


def issue_citizen_certificate(
    session: Session,
    keystore: KeyStore,
    pki: Pki,
    *,
    subject: CitizenSubject,
    purpose: Purpose,
    public_key_der: bytes,
    owner: str | None = None,
    now: datetime | None = None,
    lifetime: timedelta = CITIZEN_CERT_LIFETIME,
    actor: str = "system",
) -> CertificateRecord:
    """Issue an authentication or signing certificate under the Citizen CA. Commits."""
    key = load_citizen_key(public_key_der)
    when = now or utcnow()
    issuer = pki.citizen_ca
    request = IssueRequest(
        profile=purpose.profile,
        subject=subject.name(),
        public_key_der=public_key_der,
        not_before=when - timedelta(minutes=5),
        not_after=min(when + lifetime, as_utc(issuer.certificate.not_valid_after)),
        extensions=extensions_for(
            purpose.profile,
            subject_key_der=public_key_der,
            issuer_key_der=issuer.public_key_der,
            urls=pki.config.urls_of(issuer.name),
            policies=pki.config.policies,
            ec_key=isinstance(key, ec.EllipticCurvePublicKey),
        ),
        owner=owner,
    )
    return issue(session, keystore, issuer.signer, request, actor=actor)
