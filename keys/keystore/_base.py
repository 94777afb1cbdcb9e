"""The key store interface: create, inspect and use keys that never leave it."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum

from ..errors import InvalidKeyRequest

_KEY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class KeyAlgorithm(StrEnum):
    """Key types the service uses."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"

    @property
    def is_ec(self) -> bool:
        return self in (KeyAlgorithm.EC_P256, KeyAlgorithm.EC_P384)

    @property
    def rsa_bits(self) -> int:
        return {KeyAlgorithm.RSA_2048: 2048, KeyAlgorithm.RSA_3072: 3072}[self]


class HashAlgorithm(StrEnum):
    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"


class Padding(StrEnum):
    """RSA signature padding; ignored for EC keys."""

    PKCS1V15 = "pkcs1v15"
    PSS = "pss"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyInfo:
    """What the store tells about a key; never the private part."""

    key_id: str
    """Stable name of the key, e.g. ``citizen-ca-2026``."""
    algorithm: KeyAlgorithm
    """Key type and size."""
    public_key_der: bytes
    """DER SubjectPublicKeyInfo of the public key."""


def check_key_id(key_id: str) -> str:
    """Refuse key ids that could escape a directory or confuse a token."""
    if not _KEY_ID.fullmatch(key_id):
        raise InvalidKeyRequest(
            f"invalid key id {key_id!r}: use 1-64 of a-z 0-9 . _ -, starting with a letter or digit"
        )
    return key_id


class KeyStore(ABC):
    """Holds the service's private keys. Nothing can read a private key back out.

    ``sign`` hashes ``data`` with ``hash_algorithm`` and signs the digest. ECDSA
    signatures come back DER encoded (``Ecdsa-Sig-Value``), as X.509 and CMS want them.
    """

    @abstractmethod
    def create_key(self, key_id: str, algorithm: KeyAlgorithm) -> KeyInfo:
        """Generate a new key pair inside the store. Fails if ``key_id`` exists."""

    @abstractmethod
    def key_info(self, key_id: str) -> KeyInfo:
        """Public information about one key; ``KeyNotFound`` if absent."""

    @abstractmethod
    def list_keys(self) -> list[KeyInfo]:
        """All keys in the store, sorted by id."""

    @abstractmethod
    def sign(
        self,
        key_id: str,
        data: bytes,
        *,
        hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
        padding: Padding = Padding.PKCS1V15,
    ) -> bytes:
        """Sign ``data`` (not a digest) with the private key ``key_id``."""

    @abstractmethod
    def check(self) -> None:
        """Prove the store is usable (unlocks every key); ``KeyStoreUnavailable`` if not."""

    def has_key(self, key_id: str) -> bool:
        return any(info.key_id == key_id for info in self.list_keys())

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions or handles."""
