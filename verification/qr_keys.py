"""The QR seal keys verifiers may use, and their publication as a JWKS.

A seal certificate lives six years and is renewed (with a new key) 30 days before it
ends. Paper outlives that, so every QR seal certificate we issued and did not revoke
stays published, expired or not; a token verifies only if its time lies within the
validity of the certificate whose key sealed it. A revoked certificate disappears from
the set, and with it every token it sealed.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import Session, col, select

from keys.ca import CertState
from keys.models import CertificateRecord, as_utc
from keys.profiles import Profile

# Tokens are made with "now" of the signing server; allow its clock to lead a little.
_SKEW = timedelta(minutes=5)


def kid_of(certificate_der: bytes) -> bytes:
    """The 8-byte COSE ``kid``: the first 8 bytes of SHA-256 of the certificate's DER."""
    return hashlib.sha256(certificate_der).digest()[:8]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class QrKey:
    """One QR seal key with its certificate."""

    kid: bytes
    """8-byte key id, as in the tokens' protected header."""
    public_key: ec.EllipticCurvePublicKey
    """The P-256 public key."""
    chain: tuple[bytes, ...]
    """DER certificates: the seal certificate first, then its issuers up to our root."""
    not_before: datetime
    """Start of the seal certificate's validity."""
    not_after: datetime
    """End of the seal certificate's validity."""

    def covers(self, moment: datetime) -> bool:
        """Whether a token made at ``moment`` could have been sealed with this key."""
        return self.not_before - _SKEW <= moment <= self.not_after

    def jwk(self) -> dict[str, object]:
        numbers = self.public_key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
            "kid": _b64url(self.kid),
            "use": "sig",
            "alg": "ES256",
            # x5c is standard base64, not base64url (RFC 7517 section 4.7).
            "x5c": [base64.b64encode(der).decode("ascii") for der in self.chain],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class QrKeys:
    """The set of QR seal keys a token may name."""

    keys: tuple[QrKey, ...]
    """Newest first."""

    def find(self, kid: bytes) -> QrKey | None:
        return next((key for key in self.keys if key.kid == kid), None)

    def jwks(self) -> dict[str, object]:
        """The keys as a JSON Web Key Set (RFC 7517)."""
        return {"keys": [key.jwk() for key in self.keys]}


def _key_from(der: bytes, roots: list[x509.Certificate]) -> QrKey | None:
    certificate = x509.Certificate.load(der)
    public = serialization.load_der_public_key(certificate.public_key.dump())
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        return None
    chain = [der]
    for root in roots:
        if root.subject == certificate.issuer and root.key_identifier == certificate.authority_key_identifier:
            chain.append(root.dump())
            break
    return QrKey(
        kid=kid_of(der),
        public_key=public,
        chain=tuple(chain),
        not_before=as_utc(certificate.not_valid_before),
        not_after=as_utc(certificate.not_valid_after),
    )


def load_qr_keys(session: Session) -> QrKeys:
    """Every QR seal key we issued a certificate for and did not revoke, newest first."""

    def issued(profile: Profile) -> list[bytes]:
        rows = session.exec(
            select(CertificateRecord)
            .where(CertificateRecord.profile == profile.value)
            .where(CertificateRecord.state == CertState.ISSUED.value)
            .order_by(col(CertificateRecord.not_before).desc(), col(CertificateRecord.id).desc())
        ).all()
        return [row.der for row in rows if row.der is not None]

    roots = [x509.Certificate.load(der) for der in issued(Profile.ROOT_CA)]
    found = (_key_from(der, roots) for der in issued(Profile.QR_SEAL))
    return QrKeys(keys=tuple(key for key in found if key is not None))
