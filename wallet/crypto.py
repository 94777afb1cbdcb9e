"""The app's signatures: proofs of possession, approvals over a digest, ES256 tokens.

Every signature goes through a ``Signer``, so a software key and a PKCS#11 token key
are used the same way. A signer is only ever handed a digest: approvals sign the
request's ``hash`` as it is (the service computed it, often for a PAdES signature),
and proofs of possession hash their message here first.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Literal, Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from .errors import ProtocolError

POP_LABEL = b"eid-pop-v1"

KeyPurpose = Literal["auth", "sign", "device"]
"""The three keys an app holds, as named in proofs of possession."""

HASH_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
"""The ``hash_algorithm`` names of the protocol."""


class Curve(StrEnum):
    """The curves the app generates keys on (the ``--curve`` option)."""

    P256 = "p256"
    P384 = "p384"

    def generate(self) -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1() if self is Curve.P256 else ec.SECP384R1())

    @property
    def oid_name(self) -> str:
        """The curve's name in X9.62 and PKCS#11 (``secp256r1``)."""
        return "secp256r1" if self is Curve.P256 else "secp384r1"

    @property
    def pop_hash(self) -> str:
        """The hash a proof of possession uses with this curve (docs/protocol.md)."""
        return "sha256" if self is Curve.P256 else "sha384"

    @classmethod
    def of(cls, public_key: ec.EllipticCurvePublicKey) -> Curve:
        names = {curve.oid_name: curve for curve in cls}
        if public_key.curve.name not in names:
            raise ProtocolError(f"unsupported curve {public_key.curve.name}")
        return names[public_key.curve.name]


class Signer(Protocol):
    """A private key, wherever it lives, that signs digests."""

    @property
    def public_key_der(self) -> bytes:
        """The DER SubjectPublicKeyInfo."""
        ...

    def sign_digest(self, digest: bytes, hash_algorithm: str) -> bytes:
        """A DER ECDSA signature over ``digest``, which is not hashed again."""
        ...


class SoftwareSigner:
    """A signer over an in-memory ``cryptography`` key."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    @property
    def public_key_der(self) -> bytes:
        return spki_der(self._key.public_key())

    def sign_digest(self, digest: bytes, hash_algorithm: str) -> bytes:
        algorithm = hash_of(hash_algorithm)
        check_digest(digest, hash_algorithm)
        return self._key.sign(digest, ec.ECDSA(utils.Prehashed(algorithm)))


def spki_der(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hash_of(name: str) -> hashes.HashAlgorithm:
    """The ``cryptography`` hash for a protocol ``hash_algorithm`` name."""
    if name not in HASH_ALGORITHMS:
        raise ProtocolError(f"unsupported hash algorithm {name!r}")
    return HASH_ALGORITHMS[name]()


def check_digest(digest: bytes, hash_algorithm: str) -> None:
    """A digest must be as long as its algorithm's output, or it is not that digest."""
    if len(digest) != hash_of(hash_algorithm).digest_size:
        raise ProtocolError(f"hash is {len(digest)} bytes, not a {hash_algorithm} digest")


def pop_message(purpose: KeyPurpose, challenge: bytes) -> bytes:
    """``"eid-pop-v1" || 0x00 || purpose || 0x00 || challenge``, the bytes a proof signs."""
    return POP_LABEL + b"\x00" + purpose.encode("ascii") + b"\x00" + challenge


def prove_possession(signer: Signer, *, purpose: KeyPurpose, challenge: bytes, curve: Curve) -> bytes:
    """Sign the proof-of-possession message, hashed with the curve's hash."""
    digest = hashlib.new(curve.pop_hash, pop_message(purpose, challenge)).digest()
    return signer.sign_digest(digest, curve.pop_hash)


def verification_code(hash_value: bytes) -> str:
    """The 4-digit code the citizen compares: last 2 bytes of SHA-256(hash), mod 10000."""
    tail = hashlib.sha256(hash_value).digest()[-2:]
    return f"{int.from_bytes(tail, 'big') % 10000:04d}"


def raw_to_der(raw: bytes) -> bytes:
    """``r || s`` (PKCS#11 CKM_ECDSA, JWS) to DER ``Ecdsa-Sig-Value``."""
    half = len(raw) // 2
    return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))


def der_to_raw(der: bytes, size: int) -> bytes:
    """DER ``Ecdsa-Sig-Value`` to ``r || s``, each ``size`` bytes (JWS, RFC 7518 §3.4)."""
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")
