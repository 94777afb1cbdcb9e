"""Checking a citizen certificate presented with an approval.

The certificate must be this citizen's, issued by our Citizen CA, valid now, of the
profile the request kind needs (a signing key cannot log in, an authentication key
cannot sign), and reported ``good`` by our own OCSP responder, asked in-process with a
real OCSP request whose signed response is verified like any client would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import bindparam, select

from keys.ca import CertState
from keys.models import CertificateRecord, as_utc
from keys.profiles import Profile

from .errors import ApprovalRejected, WebEidRejected
from .ocsp_client import build_ocsp_request, ocsp_status

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_PROFILE_FOR_KIND = {"auth": Profile.CITIZEN_AUTH.value, "sign": Profile.CITIZEN_SIGN.value}

OcspAsk = Callable[[bytes, datetime], bytes]
"""Sends a DER OCSP request to our responder and returns the DER response."""

_TABLE = CertificateRecord.__table__  # type: ignore[attr-defined]
# Built once (bind parameters): building the ORM statement cost more than running it.
RECORD = select(_TABLE.c.der, _TABLE.c.owner, _TABLE.c.profile, _TABLE.c.state).where(
    _TABLE.c.serial == bindparam("serial")
)


class RecordRow(Protocol):
    """A certificate's record as ``RECORD`` reads it."""

    @property
    def der(self) -> bytes: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def profile(self) -> str: ...
    @property
    def state(self) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateChecker:
    """Checks citizen certificates against the Citizen CA and its OCSP responder."""

    citizen_ca: bytes
    """DER certificate of the Citizen CA."""

    def owned(
        self, find_record: Callable[[str], RecordRow | None], *, citizen_public_id: str, certificate: bytes
    ) -> tuple[x509.Certificate, RecordRow]:
        """The certificate parsed and its record (read by ``find_record``, ``RECORD`` by
        serial), if our Citizen CA issued it to this citizen. The answer checks the
        signature before ``usable``: only a caller who proved they hold a key certified to
        the citizen may make a request fail (``identity.answering``)."""
        cert = _issued_certificate(certificate, self.citizen_ca)
        if cert is None:
            raise ApprovalRejected("the certificate is not one issued by our Citizen CA")
        record = find_record(format(cert.serial_number, "x"))
        if record is None or record.der != certificate or record.owner != citizen_public_id:
            raise ApprovalRejected("the certificate does not belong to this citizen")
        return cert, record

    def usable(
        self,
        cert: x509.Certificate,
        record: RecordRow,
        ask_ocsp: OcspAsk,
        *,
        certificate: bytes,
        kind: str,
        now: datetime,
    ) -> None:
        """An owned certificate fits ``kind``, is valid now, issued, and ``good`` from OCSP."""
        if record.profile != _PROFILE_FOR_KIND.get(kind):
            wanted = "authentication" if kind == "auth" else "signing"
            raise ApprovalRejected(f"this request needs the {wanted} key")
        if not as_utc(cert.not_valid_before_utc) <= now <= as_utc(cert.not_valid_after_utc):
            raise ApprovalRejected("the certificate is not valid at this time")
        usage_problem = _usage_problem(certificate, kind)
        if usage_problem is not None:
            raise ApprovalRejected(usage_problem)
        if record.state != CertState.ISSUED.value:
            raise ApprovalRejected("the certificate is revoked or suspended")
        try:
            status = ocsp_status(
                ask_ocsp(build_ocsp_request(certificate, self.citizen_ca), now),
                certificate,
                self.citizen_ca,
                [self.citizen_ca],
                now,
            )
        except WebEidRejected as exc:
            raise ApprovalRejected(f"certificate status unavailable: {exc}") from None
        if status != "good":
            raise ApprovalRejected(f"the OCSP responder says the certificate is {status}")

    @staticmethod
    def verify_digest_signature(
        cert: x509.Certificate, digest: bytes, hash_algorithm: str, signature: bytes
    ) -> None:
        """The signature must be over ``digest`` as a digest (not hashed again)."""
        prehashed = utils.Prehashed(_HASHES[hash_algorithm]())
        key = cert.public_key()
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, digest, ec.ECDSA(prehashed))
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, digest, padding.PKCS1v15(), prehashed)
            else:
                raise ApprovalRejected("unsupported key type")
        except (InvalidSignature, ValueError):
            raise ApprovalRejected("the signature does not verify with the certificate's key") from None


@lru_cache(maxsize=4096)
def _issued_certificate(certificate: bytes, issuer: bytes) -> x509.Certificate | None:
    """``certificate`` parsed, if ``issuer`` signed it (both DER); else None. Cached: a
    certificate's bytes and its CA's signature never change, and the same app answers many
    requests with one. Everything that can change (record, state, OCSP) is checked per call."""
    try:
        parsed = x509.load_der_x509_certificate(certificate)
        parsed.verify_directly_issued_by(_parse(issuer))
    except (ValueError, TypeError, InvalidSignature):
        return None
    return parsed


@lru_cache(maxsize=16)
def _parse(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


@lru_cache(maxsize=4096)
def _usage_problem(certificate: bytes, kind: str) -> str | None:
    """Why the certificate's key usage does not fit ``kind``, or None (cached: fixed by its bytes)."""
    try:
        _check_usage(x509.load_der_x509_certificate(certificate), kind)
    except ApprovalRejected as exc:
        return str(exc)
    return None


def _check_usage(cert: x509.Certificate, kind: str) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise ApprovalRejected("the certificate has no key usage") from None
    if kind == "auth":
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = x509.ExtendedKeyUsage([])
        if not usage.digital_signature or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            raise ApprovalRejected("the certificate is not an authentication certificate")
    elif not usage.content_commitment:
        raise ApprovalRejected("the certificate is not a signing certificate")
