"""Asking an OCSP responder about one certificate and checking its answer (RFC 6960).

Only the two ends: ``build_ocsp_request`` makes the DER request, ``ocsp_status`` checks
the DER response and says ``good``, ``revoked`` or ``unknown``. The transport is the
caller's: the server asks its own responder in process
(``keys.ocsp.OcspResponder.respond(request_der, now=...).der``), so Web eID login and
the approval protocol share this code.

A response is believed only if it is signed by someone RFC 6960 4.2.2.2 allows to answer
for the issuer: a responder certificate the caller configured (``responder_cert_trust``),
the issuing CA itself, or a delegate the CA issued with the OCSPSigning extended key
usage. Its CertID must name our certificate and issuer, and it must be current: not
from the future, not past its nextUpdate. Parsed with ``cryptography``, independent of
the asn1crypto code that writes our responses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from .errors import WebEidRejected

OcspStatus = Literal["good", "revoked", "unknown"]

MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a thisUpdate may be (the responder's clock may run ahead)."""
MAX_AGE_WITHOUT_NEXT_UPDATE = timedelta(minutes=15)
"""How old a response without nextUpdate may be."""
MAX_NONCE_BYTES = 32  # RFC 8954

_STATUS: dict[ocsp.OCSPCertStatus, OcspStatus] = {
    ocsp.OCSPCertStatus.GOOD: "good",
    ocsp.OCSPCertStatus.REVOKED: "revoked",
    ocsp.OCSPCertStatus.UNKNOWN: "unknown",
}
_SIGNATURES: dict[x509.ObjectIdentifier, tuple[str, hashes.HashAlgorithm]] = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: ("ec", hashes.SHA256()),
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: ("ec", hashes.SHA384()),
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: ("ec", hashes.SHA512()),
    SignatureAlgorithmOID.RSA_WITH_SHA256: ("rsa", hashes.SHA256()),
    SignatureAlgorithmOID.RSA_WITH_SHA384: ("rsa", hashes.SHA384()),
    SignatureAlgorithmOID.RSA_WITH_SHA512: ("rsa", hashes.SHA512()),
}
_CERT_ID_HASHES = {"sha1", "sha256", "sha384", "sha512"}


def build_ocsp_request(cert_der: bytes, issuer_der: bytes, *, nonce: bytes | None = None) -> bytes:
    """A DER OCSPRequest for one certificate (SHA-256 CertID), with an RFC 8954 nonce if given.

    Without a nonce the responder may answer from its cache (RFC 5019), which is what the
    server wants for logins; pass one where replay of an older answer matters.
    """
    if nonce is None:
        return _request_without_nonce(cert_der, issuer_der)
    return _build_request(cert_der, issuer_der, nonce)


@lru_cache(maxsize=1024)
def _request_without_nonce(cert_der: bytes, issuer_der: bytes) -> bytes:
    """Without a nonce the request is a function of the two certificates: build it once."""
    return _build_request(cert_der, issuer_der, None)


def _build_request(cert_der: bytes, issuer_der: bytes, nonce: bytes | None) -> bytes:
    certificate = _load(cert_der, "certificate")
    issuer = _load(issuer_der, "issuer certificate")
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256())
    if nonce is not None:
        if not 1 <= len(nonce) <= MAX_NONCE_BYTES:
            raise WebEidRejected(f"an OCSP nonce has 1 to {MAX_NONCE_BYTES} bytes")
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def ocsp_status(
    response_der: bytes,
    cert_der: bytes,
    issuer_der: bytes,
    responder_cert_trust: Sequence[bytes],
    now: datetime,
    *,
    nonce: bytes | None = None,
) -> OcspStatus:
    """Check an OCSP response about ``cert_der`` (issued by ``issuer_der``); return its status.

    ``responder_cert_trust``: responder certificates configured as allowed to answer for
    this issuer (RFC 6960 4.2.2.2 "local configuration"), besides the issuer itself and
    its OCSPSigning delegates, which are always allowed; may be empty (passing the issuer
    is harmless). ``nonce``: the one sent in the request, which the response must echo.
    Raises ``WebEidRejected`` if the response is unsigned, signed by someone else, about
    another certificate, stale, or not a successful response.
    """
    when = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    response, single, signer, issuer = _verified(
        response_der, cert_der, issuer_der, tuple(responder_cert_trust)
    )
    if signer is not issuer:
        check_validity(signer, when)
    check_freshness(single, when)
    check_nonce_echoed(response, nonce)
    return _STATUS[single.certificate_status]


@lru_cache(maxsize=1024)
def _verified(
    response_der: bytes, cert_der: bytes, issuer_der: bytes, responder_cert_trust: tuple[bytes, ...]
) -> tuple[ocsp.OCSPResponse, ocsp.OCSPSingleResponse, x509.Certificate, x509.Certificate]:
    """Every check of ``ocsp_status`` that does not depend on the time, for exactly these
    bytes. Memoised: our responder hands out the same signed bytes while a certificate's
    status is unchanged (a revocation changes the bytes, so it is never answered from here),
    and a signature over the same bytes by the same key verifies the same way every time.
    Freshness, the signer's validity period and the nonce are checked on every call."""
    certificate = _load(cert_der, "certificate")
    issuer = _load(issuer_der, "issuer certificate")
    trusted = [_load(der, "trusted responder certificate") for der in responder_cert_trust]
    if certificate.issuer != issuer.subject:
        raise WebEidRejected("OCSP: the certificate was not issued by the given issuer")
    response = load_response(response_der)
    single = find_single_response(response, certificate, issuer_der)
    signer = find_signer(response, issuer, trusted)
    if _spki(signer) == _spki(issuer):
        signer = issuer
    else:
        check_delegated(signer, issuer, trusted)
    check_response_signature(response, signer)
    return response, single, signer, issuer


def check_validity(signer: x509.Certificate, now: datetime) -> None:
    if not signer.not_valid_before_utc <= now <= signer.not_valid_after_utc:
        raise WebEidRejected("OCSP: the responder certificate is not valid now")


def load_response(response_der: bytes) -> ocsp.OCSPResponse:
    try:
        response = ocsp.load_der_ocsp_response(response_der)
    except ValueError:
        raise WebEidRejected("OCSP: the response is not a valid DER OCSPResponse") from None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise WebEidRejected(f"OCSP: the responder answered {response.response_status.name.lower()}")
    return response


def find_single_response(
    response: ocsp.OCSPResponse, certificate: x509.Certificate, issuer_der: bytes
) -> ocsp.OCSPSingleResponse:
    """The SingleResponse whose CertID names our certificate: serial, issuer name and key hashes."""
    issuer_name, issuer_key = _issuer_name_and_key(issuer_der)
    try:
        singles = list(response.responses)
    except ValueError:
        raise WebEidRejected("OCSP: the response's single responses cannot be parsed") from None
    for single in singles:
        try:
            hash_name = single.hash_algorithm.name
        except UnsupportedAlgorithm:
            continue
        if hash_name not in _CERT_ID_HASHES:
            continue
        if (
            single.serial_number == certificate.serial_number
            and single.issuer_name_hash == hashlib.new(hash_name, issuer_name).digest()
            and single.issuer_key_hash == hashlib.new(hash_name, issuer_key).digest()
        ):
            return single
    raise WebEidRejected("OCSP: the response is not about this certificate (CertID mismatch)")


def find_signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, trusted: Sequence[x509.Certificate]
) -> x509.Certificate:
    """The certificate named by the ResponderID, among those embedded, trusted, and the issuer."""
    try:
        embedded = [
            certificate.public_bytes(serialization.Encoding.DER) for certificate in response.certificates
        ]
        key_hash, name = response.responder_key_hash, response.responder_name
    except Exception:  # noqa: BLE001 - cryptography raises many types on hostile input
        raise WebEidRejected("OCSP: the response's certificates cannot be parsed") from None
    candidates = [*(_load(der, "certificate in the response") for der in embedded), *trusted, issuer]
    for candidate in candidates:
        if key_hash is not None and _key_hash(candidate) == key_hash:
            return candidate
        if name is not None and candidate.subject == name:
            return candidate
    raise WebEidRejected("OCSP: the certificate that signed the response is neither included nor known")


def check_signer_authorised(
    signer: x509.Certificate, issuer: x509.Certificate, trusted: Sequence[x509.Certificate], now: datetime
) -> None:
    """RFC 6960 4.2.2.2: configured locally, the CA itself, or its delegate with OCSPSigning."""
    if _spki(signer) == _spki(issuer):
        return
    check_validity(signer, now)
    check_delegated(signer, issuer, trusted)


def check_delegated(
    signer: x509.Certificate, issuer: x509.Certificate, trusted: Sequence[x509.Certificate]
) -> None:
    """The part of ``check_signer_authorised`` that does not depend on the time."""
    if any(signer == pinned for pinned in trusted):
        return
    try:
        signer.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise WebEidRejected(
            f"OCSP: the response is signed by {signer.subject.rfc4514_string()!r}, "
            "which is neither the issuer nor a responder it delegated"
        ) from None
    try:
        usages = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        usages = None
    if usages is None or ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        raise WebEidRejected("OCSP: the responder certificate lacks the OCSPSigning extended key usage")


def check_response_signature(response: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    kind_and_hash = _SIGNATURES.get(response.signature_algorithm_oid)
    if kind_and_hash is None:
        raise WebEidRejected(
            f"OCSP: signature algorithm {response.signature_algorithm_oid.dotted_string} is not accepted"
        )
    kind, chosen_hash = kind_and_hash
    try:
        key = signer.public_key()
        if kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(chosen_hash))
        elif kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), chosen_hash)
        else:
            raise WebEidRejected("OCSP: the signature algorithm does not fit the responder's key")
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        raise WebEidRejected("OCSP: the response signature does not verify") from None


def check_freshness(single: ocsp.OCSPSingleResponse, now: datetime) -> None:
    this_update, next_update = single.this_update_utc, single.next_update_utc
    if this_update > now + MAX_CLOCK_SKEW:
        raise WebEidRejected(
            f"OCSP: the response's thisUpdate {this_update:%Y-%m-%d %H:%M:%S} is in the future"
        )
    if next_update is not None and now > next_update:
        raise WebEidRejected(
            f"OCSP: the response is stale: its nextUpdate {next_update:%Y-%m-%d %H:%M:%S} has passed"
        )
    if next_update is None and now - this_update > MAX_AGE_WITHOUT_NEXT_UPDATE:
        raise WebEidRejected("OCSP: the response is stale: it has no nextUpdate and is too old")


def check_nonce_echoed(response: ocsp.OCSPResponse, nonce: bytes | None) -> None:
    if nonce is None:
        return
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except (x509.ExtensionNotFound, ValueError):
        echoed = None
    if echoed != nonce:
        raise WebEidRejected("OCSP: the response does not echo the request's nonce")


@lru_cache(maxsize=1024)
def _load(der: bytes, what: str) -> x509.Certificate:
    """Parse (and fully decode) a certificate. Memoised: the same few certificates (our CA,
    our responder, each citizen's) come back on every check; a bad one raises, uncached."""
    try:
        certificate = x509.load_der_x509_certificate(der)
        certificate.extensions  # noqa: B018 - parsed lazily otherwise
        certificate.subject  # noqa: B018
        certificate.issuer  # noqa: B018
        certificate.public_key()
    except Exception:  # noqa: BLE001 - cryptography raises InvalidVersion, DuplicateExtension, TypeError...
        raise WebEidRejected(f"OCSP: the {what} is not a valid X.509 certificate") from None
    return certificate


def _spki(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_hash(certificate: x509.Certificate) -> bytes:
    """RFC 6960 KeyHash: SHA-1 of the subjectPublicKey bits."""
    key_bits = _issuer_name_and_key(certificate.public_bytes(serialization.Encoding.DER))[1]
    return hashlib.sha1(key_bits).digest()  # noqa: S324 - RFC 6960 KeyHash


def _issuer_name_and_key(certificate_der: bytes) -> tuple[bytes, bytes]:
    """The subject DER and subjectPublicKey bits, as encoded in the certificate (CertID inputs)."""
    try:
        parsed = asn1_x509.Certificate.load(certificate_der)
        return parsed.subject.dump(), bytes(parsed.public_key["public_key"].contents[1:])
    except Exception:  # noqa: BLE001 - asn1crypto raises many types on hostile input
        raise WebEidRejected("OCSP: a certificate cannot be parsed for its name and key") from None
