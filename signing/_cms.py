"""Small CMS helpers: the hash for a key, checking a signature value, time-stamp certificates."""

from __future__ import annotations

import functools

from asn1crypto import cms, x509
from cryptography import x509 as crypto_x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from keys.keystore import HashAlgorithm

from .errors import InvalidSigningRequest, SignatureRejected

_CURVE_HASHES = {
    "secp256r1": HashAlgorithm.SHA256,
    "secp384r1": HashAlgorithm.SHA384,
    "secp521r1": HashAlgorithm.SHA512,
}
_HASHES: dict[HashAlgorithm, type[hashes.HashAlgorithm]] = {
    HashAlgorithm.SHA256: hashes.SHA256,
    HashAlgorithm.SHA384: hashes.SHA384,
    HashAlgorithm.SHA512: hashes.SHA512,
}


def hash_algorithm_for(cert: x509.Certificate) -> HashAlgorithm:
    """The digest that goes with the signer's key: SHA-256 for P-256 and RSA, SHA-384 for P-384."""
    return _hash_algorithm_for(cert.dump())


@functools.lru_cache(maxsize=1024)
def _hash_algorithm_for(der: bytes) -> HashAlgorithm:
    # Parsing the public key costs about 0.2 ms; a signer signs with the same one many times.
    key = x509.Certificate.load(der).public_key
    if key.algorithm == "ec":
        curve = key.curve[1]
        if curve in _CURVE_HASHES:
            return _CURVE_HASHES[curve]
        raise InvalidSigningRequest(f"the signer's EC curve {curve} is not supported")
    if key.algorithm == "rsa":
        return HashAlgorithm.SHA256
    raise InvalidSigningRequest(f"the signer's key type {key.algorithm} is not supported")


def verify_signature(
    cert: x509.Certificate, digest: bytes, algorithm: HashAlgorithm, signature: bytes
) -> None:
    """``signature`` is the signer's over ``digest`` (ECDSA as DER, RSA PKCS#1 v1.5), or
    ``SignatureRejected``."""
    try:
        key = crypto_x509.load_der_x509_certificate(cert.dump()).public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidSigningRequest("the signer's certificate has an unusable public key") from exc
    prehashed = Prehashed(_HASHES[algorithm]())
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            r, s = decode_dss_signature(signature)
            # Only the canonical DER encoding goes into the CMS: no trailing bytes, no padding.
            if encode_dss_signature(r, s) != signature:
                raise ValueError("not canonical DER")
            key.verify(signature, digest, ec.ECDSA(prehashed))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), prehashed)
        else:
            raise InvalidSigningRequest("the signer's key type is not supported")
    except (InvalidSignature, ValueError) as exc:
        raise SignatureRejected(
            "the signature does not verify with the signer's certificate over the hash to be signed"
        ) from exc


def timestamp_certificates(
    signature_cms: cms.ContentInfo,
) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """The signing certificates of the signature's time-stamp tokens, and all their certificates."""
    signers: list[x509.Certificate] = []
    certs: list[x509.Certificate] = []
    for signer_info in signature_cms["content"]["signer_infos"]:
        for attribute in signer_info["unsigned_attrs"] or []:
            if attribute["type"].native != "signature_time_stamp_token":
                continue
            for token in attribute["values"]:
                signed_data = token["content"]
                found = [
                    choice.chosen
                    for choice in signed_data["certificates"] or []
                    if choice.name == "certificate"
                ]
                certs.extend(found)
                for info in signed_data["signer_infos"]:
                    sid = info["sid"].chosen
                    signers.extend(
                        cert
                        for cert in found
                        if isinstance(sid, cms.IssuerAndSerialNumber)
                        and cert.issuer == sid["issuer"]
                        and cert.serial_number == sid["serial_number"].native
                    )
    return signers, certs


def timestamp_token_size(signature_cms: cms.ContentInfo) -> int:
    """DER size of the largest signature time-stamp token in the CMS; 0 if there is none."""
    sizes = [
        len(token.dump())
        for signer_info in signature_cms["content"]["signer_infos"]
        for attribute in signer_info["unsigned_attrs"] or []
        if attribute["type"].native == "signature_time_stamp_token"
        for token in attribute["values"]
    ]
    return max(sizes, default=0)
