"""JSON Web Signatures made with keys in the key store (ID tokens, logout tokens, userinfo).

The private keys never leave the key store, so we assemble the JWS ourselves and hand
the signing input to ``KeyStore.sign``. Algorithms are pinned per key: RS256 with the
RSA key, ES256 with the P-256 key; ``alg=none`` does not exist here. Every header
carries a ``kid``: the RFC 7638 thumbprint of the public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from keys.keystore import HashAlgorithm, KeyStore

ALGORITHMS = ("RS256", "ES256")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def public_jwk(public_key_der: bytes) -> dict[str, str]:
    """The public JWK of a key (RSA or P-256), without ``kid``/``alg``/``use``."""
    key = serialization.load_der_public_key(public_key_der)
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return {"kty": "RSA", "n": _int(numbers.n), "e": _int(numbers.e)}
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        point = key.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(point.x.to_bytes(32, "big")),
            "y": b64url(point.y.to_bytes(32, "big")),
        }
    raise ValueError("only RSA and P-256 keys sign tokens")


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """One token signing key in the key store."""

    key_id: str
    """Key store id."""
    alg: str
    """``RS256`` or ``ES256``."""
    jwk: dict[str, str]
    """Public JWK, with ``kid``, ``alg`` and ``use``."""

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    @classmethod
    def load(cls, keystore: KeyStore, key_id: str) -> SigningKey:
        info = keystore.key_info(key_id)
        jwk = public_jwk(info.public_key_der)
        alg = "RS256" if jwk["kty"] == "RSA" else "ES256"
        return cls(key_id=key_id, alg=alg, jwk=jwk | {"kid": thumbprint(jwk), "alg": alg, "use": "sig"})


def sign(keystore: KeyStore, key: SigningKey, claims: dict[str, Any], *, typ: str | None = None) -> str:
    """A compact JWS over ``claims``."""
    header: dict[str, str] = {"alg": key.alg, "kid": key.kid}
    if typ:
        header["typ"] = typ
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    )
    signature = keystore.sign(key.key_id, signing_input.encode("ascii"), hash_algorithm=HashAlgorithm.SHA256)
    if key.alg == "ES256":
        r, s = decode_dss_signature(signature)  # JWS wants raw r || s, not DER
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing_input + "." + b64url(signature)


def half_hash(value: str) -> str:
    """``at_hash``/``c_hash`` for RS256 and ES256: left half of SHA-256, base64url."""
    return b64url(hashlib.sha256(value.encode("ascii")).digest()[:16])
