"""Low-level X.509 assembly with asn1crypto, signed through the key store.

``cryptography``'s builders want a private key object in process; our keys may live in
an HSM, so we build the to-be-signed structures ourselves and hand only the bytes to
``KeyStore.sign``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from asn1crypto import algos, core, keys, x509

from .keystore import HashAlgorithm, KeyAlgorithm, KeyStore

# Dates before 2050 are UTCTime, from 2050 on GeneralizedTime (RFC 5280 4.1.2.5).
_UTCTIME_LIMIT = 2050


def x509_time(value: datetime) -> x509.Time:
    if value.year < _UTCTIME_LIMIT:
        return x509.Time(name="utc_time", value=value)
    return x509.Time(name="general_time", value=value)


def signature_algorithm(algorithm: KeyAlgorithm) -> tuple[str, HashAlgorithm]:
    """The asn1crypto signature algorithm name and hash a key of this type signs with."""
    if algorithm is KeyAlgorithm.EC_P384:
        return "sha384_ecdsa", HashAlgorithm.SHA384
    if algorithm is KeyAlgorithm.EC_P256:
        return "sha256_ecdsa", HashAlgorithm.SHA256
    return "sha256_rsa", HashAlgorithm.SHA256


def sign_structure(
    keystore: KeyStore, key_id: str, algorithm: KeyAlgorithm, tbs: core.Asn1Value
) -> tuple[algos.SignedDigestAlgorithm, bytes]:
    """Sign the DER of ``tbs``; return the algorithm identifier and the signature."""
    name, hash_algorithm = signature_algorithm(algorithm)
    signature = keystore.sign(key_id, tbs.dump(), hash_algorithm=hash_algorithm)
    return algos.SignedDigestAlgorithm({"algorithm": name}), signature


def random_serial() -> int:
    """A positive 128-bit serial with 127 random bits (RFC 5280 allows 20 octets)."""
    return secrets.randbits(127) | (1 << 127)


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def key_identifier(public_key_der: bytes) -> bytes:
    """RFC 5280 method 1: SHA-1 of the subjectPublicKey bit string."""
    info = keys.PublicKeyInfo.load(public_key_der)
    return hashlib.sha1(info["public_key"].contents[1:]).digest()  # noqa: S324 - RFC 5280 method


def build_name(attributes: list[tuple[str, str]]) -> x509.Name:
    """A Name with one attribute per RDN, in the given order.

    ``country_name`` and ``serial_number`` are PrintableString, the rest UTF8String.
    """
    rdns = []
    for attr_type, value in attributes:
        printable = attr_type in ("country_name", "serial_number")
        encoded = x509.DirectoryString(name="printable_string" if printable else "utf8_string", value=value)
        rdns.append(
            x509.RelativeDistinguishedName([x509.NameTypeAndValue({"type": attr_type, "value": encoded})])
        )
    return x509.Name(name="", value=x509.RDNSequence(rdns))


def extension(oid_or_name: str, value: core.Asn1Value, *, critical: bool) -> x509.Extension:
    ext = x509.Extension({"extn_id": oid_or_name, "critical": critical})
    ext["extn_value"] = core.ParsableOctetString(value.dump())
    return ext


def build_certificate(
    *,
    keystore: KeyStore,
    issuer_key_id: str,
    issuer_algorithm: KeyAlgorithm,
    issuer_name: x509.Name,
    subject_name: x509.Name,
    subject_public_key_der: bytes,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    extensions: list[x509.Extension],
) -> x509.Certificate:
    """Assemble and sign a v3 certificate."""
    sig_name, _ = signature_algorithm(issuer_algorithm)
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": {"algorithm": sig_name},
            "issuer": issuer_name,
            "validity": {"not_before": x509_time(not_before), "not_after": x509_time(not_after)},
            "subject": subject_name,
            "subject_public_key_info": keys.PublicKeyInfo.load(subject_public_key_der),
            "extensions": extensions,
        }
    )
    algorithm, signature = sign_structure(keystore, issuer_key_id, issuer_algorithm, tbs)
    certificate = x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": algorithm,
            "signature_value": signature,
        }
    )
    # Round-trip once so the returned object is exactly what a parser will see.
    return x509.Certificate.load(certificate.dump())


_SHORT_NAMES = {
    "country_name": "C",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "common_name": "CN",
    "surname": "SN",
    "given_name": "GN",
    "serial_number": "serialNumber",
    "organization_identifier": "organizationIdentifier",
}


def rfc4514(name: x509.Name) -> str:
    """The RFC 4514 string of a name (most specific RDN first), for people and logs."""
    parts = []
    for rdn in reversed(list(name.chosen)):
        for attr in rdn:
            key = attr["type"].native
            label = _SHORT_NAMES.get(key, attr["type"].dotted)
            value = str(attr["value"].native)
            escaped = "".join("\\" + ch if ch in ',+"\\<>;=' else ch for ch in value)
            if escaped.startswith(("#", " ")):
                escaped = "\\" + escaped
            parts.append(f"{label}={escaped}")
    return ",".join(parts)
