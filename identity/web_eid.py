"""Web eID authentication tokens (``web-eid:1.x``), validated as a table of small checks.

The token is a JSON object made by the Web eID app (web-eid.eu; format described in
the web-eid-authtoken-validation-java README and the web-eid-spec)::

    {"unverifiedCertificate": "MIIF...", "algorithm": "ES384", "signature": "HBjN...",
     "format": "web-eid:1.0", "appVersion": "https://web-eid.eu/web-eid-app/releases/v2.0.0"}

The signature is made with the citizen's authentication key over
``H(origin) || H(nonce)``, ``H`` being the hash of ``algorithm`` (SHA-384 for ES384).
Origin and nonce are not in the token: the caller passes the values it trusts, so a
valid signature proves both at once. Minor format versions are backwards compatible;
``web-eid:1.1`` adds the signing certificate(s) for a later signature, which
authentication accepts (with a loose shape check) and ignores.

Each check is one function raising ``WebEidRejected`` with one specific message. They
run cheapest first; the caller's revocation check runs last, so a token that fails
anything else costs no OCSP round trip. The chain is built with ``cryptography``'s
``x509.verification`` (synchronous and offline; pyhanko-certvalidator 0.33 only offers
``async_`` validation, whose sync use would need ``asyncio.run`` inside the server).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError

from keys.errors import ServiceError

from .errors import InvalidPersonalCode, WebEidRejected
from .personal_codes import FORMATS, parse_personal_code

MAX_CERTIFICATE_BYTES = 16 * 1024
MAX_SIGNATURE_BYTES = 1024
MAX_TOKEN_CHARS = 128 * 1024
"""Rough JSON size of the whole token, extra (v1.1 and unknown) fields included."""
MAX_TOKEN_DEPTH = 6
MAX_NAME_CHARS = 64
"""``algorithm``, ``format`` and the names inside ``supportedSignatureAlgorithms``."""
MAX_APP_VERSION_CHARS = 1024
MAX_LIST_ITEMS = 16
MIN_NONCE_BYTES = 32
MAX_NONCE_CHARS = 1024
MIN_RSA_BITS = 2048
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""Hosts a browser treats as secure over plain http, so Web eID works there in development."""

REQUIRED_FIELDS = ("unverifiedCertificate", "algorithm", "signature", "format")

_FORMAT = re.compile(r"web-eid:(0|[1-9][0-9]{0,8})(?:\.(0|[1-9][0-9]{0,8}))?")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
_NONCE = re.compile(r"[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+={0,2}")
_SEMANTICS_ID = re.compile(r"PNO([A-Z]{2})-(.+)")
_PRINTABLE = re.compile(r"[\x20-\x7e]+")


@dataclass(frozen=True, slots=True)
class _Algorithm:
    hash: Callable[[], hashes.HashAlgorithm]
    """H, the hash of the signed value's two halves and of the signature itself."""
    curve: type[ec.EllipticCurve] | None
    """The EC curve an ES* algorithm is bound to (RFC 7518 3.4); None for RSA."""
    pss: bool = False
    """RSASSA-PSS (salt length = digest length, MGF1 with the same hash) or PKCS#1 v1.5."""


ALGORITHMS: Mapping[str, _Algorithm] = {
    "ES256": _Algorithm(hashes.SHA256, ec.SECP256R1),
    "ES384": _Algorithm(hashes.SHA384, ec.SECP384R1),
    "ES512": _Algorithm(hashes.SHA512, ec.SECP521R1),
    "RS256": _Algorithm(hashes.SHA256, None),
    "PS256": _Algorithm(hashes.SHA256, None, pss=True),
}
"""The accepted JWA names. The Web eID format also lists RS384, RS512, PS384 and PS512;
this service accepts only the five above and rejects those like any unknown name."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WebEidIdentity:
    """What a valid Web eID authentication token proves."""

    certificate_der: bytes = field(repr=False)
    """The citizen's authentication certificate (DER)."""
    serial: str
    """Serial number of the certificate, lowercase hex."""
    issuer_der: bytes = field(repr=False)
    """The CA certificate that issued it (DER), as found while building the chain."""
    country: str
    """ISO 3166-1 alpha-2 country of the personal code, e.g. ``EE``."""
    personal_code: str
    """National personal code, e.g. ``38001085718``."""
    given_name: str
    """Subject ``GN``, as written in the certificate (upper case on Estonian certificates)."""
    family_name: str
    """Subject ``SN``, as written in the certificate."""
    algorithm: str
    """JWA name of the token's signature algorithm, e.g. ``ES384``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Token:
    """The fields of a token that passed the shape checks, decoded."""

    certificate_der: bytes
    algorithm: str
    signature: bytes
    format: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Subject:
    country: str
    personal_code: str
    given_name: str
    family_name: str


RevocationCheck = Callable[[bytes, bytes], None]
"""``check(cert_der, issuer_der)``: returns if not revoked, raises ``WebEidRejected`` otherwise."""


def validate_auth_token(
    token: object,
    *,
    origin: str,
    nonce: str,
    trust_anchors: Sequence[bytes],
    intermediates: Sequence[bytes],
    check_revocation: RevocationCheck,
    now: datetime,
) -> WebEidIdentity:
    """Validate a parsed Web eID token; return who it authenticates or raise ``WebEidRejected``.

    ``origin`` (``https://host[:port]``, no trailing slash) and ``nonce`` are the caller's
    trusted values, used verbatim; the caller guarantees the nonce is single use and
    unexpired. ``check_revocation`` runs last, only for tokens that passed every other check;
    a builtin exception from it becomes ``WebEidRejected``, a ``ServiceError`` passes through.
    """
    when = _utc(now)
    check_origin(origin)
    check_nonce(nonce)
    parsed = parse_token(token)
    certificate = load_certificate(parsed.certificate_der)
    for check in CERTIFICATE_CHECKS:
        check(certificate, parsed, when)
    subject = identity_of(certificate)
    check_signature(certificate, parsed, origin=origin, nonce=nonce)
    issuer = check_chain(certificate, trust_anchors=trust_anchors, intermediates=intermediates, now=when)
    issuer_der = issuer.public_bytes(serialization.Encoding.DER)
    try:
        check_revocation(parsed.certificate_der, issuer_der)
    except ServiceError:
        raise
    except Exception as exc:  # noqa: BLE001 - the caller's checker must not leak builtins either
        raise WebEidRejected("the certificate's revocation status could not be checked") from exc
    return WebEidIdentity(
        certificate_der=parsed.certificate_der,
        serial=format(certificate.serial_number, "x"),
        issuer_der=issuer_der,
        country=subject.country,
        personal_code=subject.personal_code,
        given_name=subject.given_name,
        family_name=subject.family_name,
        algorithm=parsed.algorithm,
    )


# --- the caller's values ---------------------------------------------------------------


def check_origin(origin: object) -> None:
    """``https://host[:port]`` in ASCII serialisation (http only for localhost), nothing after."""
    if not isinstance(origin, str) or not 0 < len(origin) <= 2048 or not _PRINTABLE.fullmatch(origin):
        raise WebEidRejected("the origin must be a non-empty ASCII string")
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise WebEidRejected(f"the origin {origin!r} is not a URL") from None
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOCAL_HOSTS):
        raise WebEidRejected(f"the origin {origin!r} must use https")
    if not parts.hostname or "@" in parts.netloc or origin != f"{parts.scheme}://{parts.netloc}":
        raise WebEidRejected(f"the origin {origin!r} must be scheme://host[:port] with no path or slash")
    if origin != origin.lower():
        raise WebEidRejected(f"the origin {origin!r} must be in lower case")
    if (parts.scheme, parts.port) in {("https", 443), ("http", 80)}:
        raise WebEidRejected(f"the origin {origin!r} must leave out the default port, as browsers do")


def check_nonce(nonce: object) -> None:
    """At least 256 bits of base64 (standard or URL-safe alphabet) text."""
    if not isinstance(nonce, str) or len(nonce) > MAX_NONCE_CHARS or not _NONCE.fullmatch(nonce):
        raise WebEidRejected("the challenge nonce must be base64 text")
    if len(nonce.rstrip("=")) * 6 // 8 < MIN_NONCE_BYTES:
        raise WebEidRejected(f"the challenge nonce must carry at least {MIN_NONCE_BYTES * 8} bits")


# --- the token's shape -----------------------------------------------------------------


def parse_token(token: object) -> _Token:
    """Run the shape checks and decode the fields authentication uses."""
    fields = check_is_object(token)
    check_token_size(fields)
    required = check_required_fields(fields)
    version = check_format(required["format"])
    check_algorithm(required["algorithm"])
    check_optional_fields(fields, minor_version=version[1])
    return _Token(
        certificate_der=decode_base64(
            required["unverifiedCertificate"], "unverifiedCertificate", max_bytes=MAX_CERTIFICATE_BYTES
        ),
        algorithm=required["algorithm"],
        signature=decode_base64(required["signature"], "signature", max_bytes=MAX_SIGNATURE_BYTES),
        format=required["format"],
    )


def check_is_object(token: object) -> Mapping[str, object]:
    if not isinstance(token, Mapping):
        raise WebEidRejected(f"the token must be a JSON object, not {type(token).__name__}")
    if not all(isinstance(key, str) for key in token):
        raise WebEidRejected("the token's field names must be strings")
    return token


def check_token_size(fields: Mapping[str, object]) -> None:
    """Bounds the whole token, extra fields too, without recursion: size, depth, JSON types."""
    size = 0
    pending: list[tuple[object, int]] = [(fields, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_TOKEN_DEPTH:
            raise WebEidRejected(f"the token is nested deeper than {MAX_TOKEN_DEPTH} levels")
        if isinstance(value, str):
            size += len(value) + 2
        elif isinstance(value, Mapping):
            size += 2 + 4 * len(value)
            if size <= MAX_TOKEN_CHARS:
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise WebEidRejected("the token's field names must be strings")
                    size += len(key)
                    pending.append((item, depth + 1))
        elif isinstance(value, list):
            size += 2 + len(value)
            if size <= MAX_TOKEN_CHARS:
                pending.extend((item, depth + 1) for item in value)
        elif value is None or isinstance(value, bool | int | float):
            size += 8
        else:
            raise WebEidRejected(f"the token holds a {type(value).__name__}, which is not JSON")
        if size > MAX_TOKEN_CHARS:
            raise WebEidRejected(f"the token is larger than {MAX_TOKEN_CHARS // 1024} KiB")


def check_required_fields(fields: Mapping[str, object]) -> dict[str, str]:
    required = {}
    for name in REQUIRED_FIELDS:
        value = fields.get(name)
        if value is None:
            raise WebEidRejected(f"the token has no '{name}' field")
        if not isinstance(value, str) or not value:
            raise WebEidRejected(f"the token's '{name}' must be a non-empty string")
        required[name] = value
    return required


def check_format(value: object) -> tuple[int, int]:
    """``web-eid:1``, ``web-eid:1.0``, ``web-eid:1.1``...: major 1, any minor (they are compatible)."""
    match = _FORMAT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise WebEidRejected(f"unknown token format {str(value)[:MAX_NAME_CHARS]!r}")
    major, minor = int(match[1]), int(match[2] or 0)
    if major != 1:
        raise WebEidRejected(f"token format {value!r} is not supported: only web-eid:1.x")
    return major, minor


def check_algorithm(value: object) -> None:
    if not isinstance(value, str) or value not in ALGORITHMS:
        shown = str(value)[:MAX_NAME_CHARS]
        raise WebEidRejected(
            f"signature algorithm {shown!r} is not supported: use one of {', '.join(ALGORITHMS)}"
        )


def check_optional_fields(fields: Mapping[str, object], *, minor_version: int) -> None:
    """``appVersion`` and the v1.1 fields, if present, have the right shape; their values are ignored.

    Two v1.1 spellings exist: ``unverifiedSigningCertificates`` (a list of
    ``{certificate, supportedSignatureAlgorithms}``) and the earlier
    ``unverifiedSigningCertificate`` with a top-level ``supportedSignatureAlgorithms``.
    """
    app_version = fields.get("appVersion")
    if app_version is not None and (
        not isinstance(app_version, str) or len(app_version) > MAX_APP_VERSION_CHARS
    ):
        raise WebEidRejected(
            f"the token's 'appVersion' must be a string of at most {MAX_APP_VERSION_CHARS} characters"
        )
    signing_fields = (
        "unverifiedSigningCertificates",
        "unverifiedSigningCertificate",
        "supportedSignatureAlgorithms",
    )
    present = [name for name in signing_fields if fields.get(name) is not None]
    if present and minor_version < 1:
        raise WebEidRejected(f"the token's '{present[0]}' field needs format web-eid:1.1 or later")
    certificates = fields.get("unverifiedSigningCertificates")
    if certificates is not None:
        for item in _list_of(certificates, "unverifiedSigningCertificates"):
            if not isinstance(item, Mapping):
                raise WebEidRejected("each of 'unverifiedSigningCertificates' must be an object")
            _check_base64_text(item.get("certificate"), "unverifiedSigningCertificates[].certificate")
            _check_algorithm_list(item.get("supportedSignatureAlgorithms"))
    single = fields.get("unverifiedSigningCertificate")
    if single is not None:
        _check_base64_text(single, "unverifiedSigningCertificate")
    if fields.get("supportedSignatureAlgorithms") is not None:
        _check_algorithm_list(fields["supportedSignatureAlgorithms"])
    intermediates = fields.get("unverifiedIntermediateCertificates")
    if intermediates is not None:  # never trusted: the chain is built from the caller's certificates
        for item in _list_of(intermediates, "unverifiedIntermediateCertificates"):
            _check_base64_text(item, "unverifiedIntermediateCertificates[]")


def _list_of(value: object, name: str) -> list[object]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST_ITEMS:
        raise WebEidRejected(f"the token's '{name}' must be a list of 1 to {MAX_LIST_ITEMS} items")
    return value


def _check_base64_text(value: object, name: str) -> None:
    limit = (MAX_CERTIFICATE_BYTES + 2) // 3 * 4
    if not isinstance(value, str) or not value or len(value) > limit or not _BASE64.fullmatch(value):
        raise WebEidRejected(f"the token's '{name}' must be a base64 certificate of at most 16 KiB")


def _check_algorithm_list(value: object) -> None:
    for item in _list_of(value, "supportedSignatureAlgorithms"):
        if not isinstance(item, Mapping) or not all(
            isinstance(item.get(key), str) and 0 < len(item[key]) <= MAX_NAME_CHARS
            for key in ("cryptoAlgorithm", "hashFunction", "paddingScheme")
        ):
            raise WebEidRejected(
                "each of 'supportedSignatureAlgorithms' must be an object with string "
                "'cryptoAlgorithm', 'hashFunction' and 'paddingScheme'"
            )


def decode_base64(text: str, name: str, *, max_bytes: int) -> bytes:
    """Strict standard base64 with padding (what the Web eID app sends), size checked first."""
    if len(text) > (max_bytes + 2) // 3 * 4:
        raise WebEidRejected(f"the token's '{name}' is larger than {max_bytes} bytes")
    if not _BASE64.fullmatch(text):
        raise WebEidRejected(f"the token's '{name}' is not valid base64")
    try:
        decoded = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except ValueError:  # binascii.Error; the regular expression should already have caught it
        raise WebEidRejected(f"the token's '{name}' is not valid base64") from None
    if len(decoded) > max_bytes:
        raise WebEidRejected(f"the token's '{name}' is larger than {max_bytes} bytes")
    return decoded


# --- the certificate -------------------------------------------------------------------


def load_certificate(der: bytes) -> x509.Certificate:
    """Parse the certificate and every part used later (cryptography parses some lazily).

    Any exception is a rejection; so is a parse warning where warnings are errors (tests).
    Elsewhere cryptography's warnings (a negative serial, a bad attribute length) are only
    logged, and such a certificate still fails the chain or signature check.
    """
    try:
        certificate = x509.load_der_x509_certificate(der)
        certificate.extensions  # noqa: B018
        certificate.subject  # noqa: B018
        certificate.issuer  # noqa: B018
        certificate.public_key()
        certificate.not_valid_before_utc  # noqa: B018
        certificate.not_valid_after_utc  # noqa: B018
        # The one part outside the signed data DER leaves room for: the signature BIT STRING's
        # unused-bits count. cryptography ignores it, so check that the encoding is the issued one.
        unused_bits = asn1_x509.Certificate.load(der)["signature_value"].contents[:1]
    except Exception:  # noqa: BLE001 - cryptography raises InvalidVersion, DuplicateExtension, TypeError...
        raise WebEidRejected("the token's 'unverifiedCertificate' is not a valid X.509 certificate") from None
    if unused_bits != b"\x00":
        raise WebEidRejected("the token's 'unverifiedCertificate' is not DER: its signature has unused bits")
    return certificate


def check_validity(certificate: x509.Certificate, _token: _Token, now: datetime) -> None:
    if now < certificate.not_valid_before_utc:
        raise WebEidRejected(
            f"the certificate is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if now > certificate.not_valid_after_utc:
        raise WebEidRejected(
            f"the certificate expired at {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )


def check_purpose(certificate: x509.Certificate, _token: _Token, _now: datetime) -> None:
    """A person's authentication certificate: digitalSignature, clientAuth, not a CA."""
    try:
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise WebEidRejected(
            "the certificate has no key usage, so it is not an authentication certificate"
        ) from None
    if not key_usage.digital_signature:
        raise WebEidRejected(
            "the certificate does not allow digitalSignature: it is not an authentication certificate"
            + (" (it is a signing certificate)" if key_usage.content_commitment else "")
        )
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise WebEidRejected("the certificate has no extended key usage clientAuth") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise WebEidRejected("the certificate's extended key usage does not include clientAuth")
    try:
        is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if is_ca:
        raise WebEidRejected("the certificate is a CA certificate, not a person's authentication certificate")


def check_key_fits_algorithm(certificate: x509.Certificate, token: _Token, _now: datetime) -> None:
    """ES256/384/512 need a P-256/384/521 key; RS256/PS256 an RSA key of 2048 bits or more."""
    algorithm = ALGORITHMS[token.algorithm]
    key = certificate.public_key()
    if algorithm.curve is not None:
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, algorithm.curve):
            raise WebEidRejected(
                f"{token.algorithm} needs a {algorithm.curve.name} key; the certificate has {_describe(key)}"
            )
    elif not isinstance(key, rsa.RSAPublicKey):
        raise WebEidRejected(f"{token.algorithm} needs an RSA key; the certificate has {_describe(key)}")
    elif key.key_size < MIN_RSA_BITS:
        raise WebEidRejected(f"RSA keys must have at least {MIN_RSA_BITS} bits, not {key.key_size}")


def check_signature_length(certificate: x509.Certificate, token: _Token, _now: datetime) -> None:
    """ECDSA signatures are raw r||s (not DER); RSA signatures are as long as the modulus."""
    expected = _signature_length(certificate.public_key())
    if len(token.signature) != expected:
        hint = " (DER encoded? Web eID sends raw r||s)" if token.algorithm.startswith("ES") else ""
        got = len(token.signature)
        raise WebEidRejected(
            f"a {token.algorithm} signature for this key has {expected} bytes, not {got}{hint}"
        )


CERTIFICATE_CHECKS: tuple[Callable[[x509.Certificate, _Token, datetime], None], ...] = (
    check_validity,
    check_purpose,
    check_key_fits_algorithm,
    check_signature_length,
)
"""Run in order on the parsed certificate, before anything costs a signature verification."""


def identity_of(certificate: x509.Certificate) -> _Subject:
    """The person: ``serialNumber`` ``PNOEE-<code>`` (or a bare code with ``C``), ``GN``, ``SN``."""
    serial = _single_attribute(certificate, NameOID.SERIAL_NUMBER, "serialNumber")
    match = _SEMANTICS_ID.fullmatch(serial)
    if match is not None:
        country, code = match[1], match[2]
    elif serial.isascii() and serial.isalnum():
        country = _single_attribute(certificate, NameOID.COUNTRY_NAME, "C").upper()
        code = serial
    else:
        raise WebEidRejected(
            f"the certificate's serialNumber {serial!r} is not a personal number (PNOxx-...)"
        )
    if country in FORMATS:
        try:
            code = parse_personal_code(code, country).code
        except InvalidPersonalCode as exc:
            raise WebEidRejected(f"the certificate's personal code is invalid: {exc}") from None
    elif not _PRINTABLE.fullmatch(code):
        raise WebEidRejected("the certificate's personal code is not printable ASCII")
    return _Subject(
        country=country,
        personal_code=code,
        given_name=_single_attribute(certificate, NameOID.GIVEN_NAME, "GN"),
        family_name=_single_attribute(certificate, NameOID.SURNAME, "SN"),
    )


def _single_attribute(certificate: x509.Certificate, oid: x509.ObjectIdentifier, name: str) -> str:
    values = certificate.subject.get_attributes_for_oid(oid)
    if len(values) != 1 or not isinstance(values[0].value, str) or not values[0].value.strip():
        raise WebEidRejected(f"the certificate's subject must have exactly one {name}")
    return values[0].value


# --- the signature and the chain -------------------------------------------------------


def signed_value(algorithm: str, *, origin: str, nonce: str) -> bytes:
    """``H(origin) || H(nonce)``, both as UTF-8, ``H`` the hash of ``algorithm``."""
    hash_name = ALGORITHMS[algorithm].hash().name
    return hashlib.new(hash_name, origin.encode()).digest() + hashlib.new(hash_name, nonce.encode()).digest()


def check_signature(certificate: x509.Certificate, token: _Token, *, origin: str, nonce: str) -> None:
    algorithm = ALGORITHMS[token.algorithm]
    data = signed_value(token.algorithm, origin=origin, nonce=nonce)
    key = certificate.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            half = len(token.signature) // 2
            r = int.from_bytes(token.signature[:half], "big")
            s = int.from_bytes(token.signature[half:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(algorithm.hash()))
        elif isinstance(key, rsa.RSAPublicKey):
            chosen_hash = algorithm.hash()
            scheme: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(chosen_hash), salt_length=chosen_hash.digest_size)
                if algorithm.pss
                else padding.PKCS1v15()
            )
            key.verify(token.signature, data, scheme, chosen_hash)
        else:  # check_key_fits_algorithm already refused other keys
            raise WebEidRejected(f"{token.algorithm} cannot be verified with {_describe(key)}")
    except (InvalidSignature, ValueError):
        raise WebEidRejected(
            "the token signature does not verify: made for another origin or challenge, or with another key"
        ) from None


def check_chain(
    certificate: x509.Certificate,
    *,
    trust_anchors: Sequence[bytes],
    intermediates: Sequence[bytes],
    now: datetime,
) -> x509.Certificate:
    """Build a path to one of ``trust_anchors`` through ``intermediates``; return the issuing CA.

    RFC 5280 path validation by ``cryptography`` with the Web PKI rules for the CAs; the
    leaf's extensions are not held to Web PKI rules (an e-ID certificate has no
    subjectAltName) because ``check_purpose`` checks what matters for it. Offline: no
    revocation here, the caller's check does it.
    """
    try:
        store = Store([x509.load_der_x509_certificate(der) for der in trust_anchors])
        others = [x509.load_der_x509_certificate(der) for der in intermediates]
    except Exception:  # noqa: BLE001 - see load_certificate
        raise WebEidRejected(
            "the configured trust anchors or intermediate certificates are not valid"
        ) from None
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(now)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
        )
        .build_client_verifier()
    )
    try:
        chain = verifier.verify(certificate, others).chain
    except (VerificationError, ValueError) as exc:
        raise WebEidRejected(f"the certificate is not issued by a trusted CA: {_reason(exc)}") from None
    if len(chain) < 2:
        raise WebEidRejected("the certificate is itself a trust anchor, not a citizen certificate")
    return chain[1]


def _reason(exc: Exception) -> str:
    """The verifier's message without the certificate dump it appends."""
    return str(exc).split(" (encountered processing", 1)[0].removeprefix("validation failed: ")


def _signature_length(key: object) -> int:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return 2 * ((key.curve.key_size + 7) // 8)
    if isinstance(key, rsa.RSAPublicKey):
        return (key.key_size + 7) // 8
    raise WebEidRejected(f"the certificate's key ({_describe(key)}) cannot make Web eID signatures")


def _describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an EC {key.curve.name} key"
    if isinstance(key, rsa.RSAPublicKey):
        return f"an RSA {key.key_size}-bit key"
    return f"a {type(key).__name__.removeprefix('_')} key"


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
