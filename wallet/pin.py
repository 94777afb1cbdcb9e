"""PIN and PUK rules, and wrapping a private key under a PIN or PUK.

A file wallet keeps each private key twice: encrypted under its PIN and under the
PUK. The wrapping key comes from scrypt (memory-hard, so every guess costs about
32 MiB and 0.1 s) and encrypts with AES-256-GCM. The GCM tag is how a wrong PIN is
noticed: there is no separate PIN hash to compare against. The associated data
names the key purpose and the secret, so a blob cannot be moved to another slot
(the signing key passed off as the authentication key, say) without failing.

The try counter (three wrong in a row blocks) is kept in the wallet file by
``store.Wallet.attempt``. It limits guessing through the app. It cannot stop an
attacker who copies the wallet file and guesses offline: a 4-digit PIN under scrypt
falls in minutes. That is why the PKCS#11 backend exists, where the token enforces
the PIN and the key never leaves it.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import IncorrectSecret, PinFormatError, StoreError

MAX_TRIES = 3
"""Wrong PINs (or PUKs) in a row that block it."""

PUK_LENGTH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretRule:
    """The form a PIN or PUK must have."""

    name: str
    """How the citizen knows it: ``PIN1``, ``PIN2`` or ``PUK``."""
    min_digits: int
    """Fewest digits allowed."""
    max_digits: int
    """Most digits allowed."""

    def check(self, value: str) -> str:
        """Return ``value`` if it fits, else raise ``PinFormatError``."""
        # str.isdigit accepts other scripts' digits and superscripts; only ASCII counts.
        if not (value.isascii() and value.isdigit() and self.min_digits <= len(value) <= self.max_digits):
            if self.min_digits == self.max_digits:
                raise PinFormatError(f"{self.name} must be {self.min_digits} digits")
            raise PinFormatError(f"{self.name} must be {self.min_digits}-{self.max_digits} digits")
        return value


PIN1 = SecretRule(name="PIN1", min_digits=4, max_digits=12)
PIN2 = SecretRule(name="PIN2", min_digits=5, max_digits=12)
PUK = SecretRule(name="PUK", min_digits=PUK_LENGTH, max_digits=PUK_LENGTH)


def generate_puk() -> str:
    """A fresh PUK: 8 random digits from the OS generator."""
    return f"{secrets.randbelow(10**PUK_LENGTH):0{PUK_LENGTH}d}"


@dataclass(frozen=True, slots=True, kw_only=True)
class KdfParams:
    """scrypt cost parameters, stored with every wrapped key."""

    n: int = 2**15
    """CPU/memory cost (a power of two); 2**15 with r=8 needs 32 MiB."""
    r: int = 8
    """Block size."""
    p: int = 1
    """Parallelism."""

    def check(self) -> KdfParams:
        """Refuse parameters a damaged or hostile file could use to hang the app."""
        if not (
            2**10 <= self.n <= 2**20 and self.n & (self.n - 1) == 0 and 1 <= self.r <= 32 and 1 <= self.p <= 4
        ):
            raise StoreError(f"unsupported scrypt parameters n={self.n} r={self.r} p={self.p}")
        return self


DEFAULT_KDF = KdfParams()


@dataclass(frozen=True, slots=True, kw_only=True)
class WrappedKey:
    """A private key encrypted under a PIN or PUK."""

    kdf: KdfParams
    """How the AES key was derived from the PIN or PUK."""
    salt: bytes
    """Random scrypt salt, 16 bytes."""
    nonce: bytes
    """Random AES-GCM nonce, 12 bytes (each wrap uses a new key, so never reused)."""
    ciphertext: bytes
    """The PKCS#8 DER private key, encrypted, with the 16-byte GCM tag appended."""

    def to_json(self) -> dict[str, Any]:
        b64 = base64.b64encode
        return {
            "kdf": "scrypt",
            "n": self.kdf.n,
            "r": self.kdf.r,
            "p": self.kdf.p,
            "salt": b64(self.salt).decode(),
            "nonce": b64(self.nonce).decode(),
            "ciphertext": b64(self.ciphertext).decode(),
            "cipher": "aes-256-gcm",
        }

    @classmethod
    def from_json(cls, data: Any) -> WrappedKey:
        try:
            if data["kdf"] != "scrypt" or data["cipher"] != "aes-256-gcm":
                raise StoreError("wrapped key uses an unknown algorithm")
            kdf = KdfParams(n=int(data["n"]), r=int(data["r"]), p=int(data["p"])).check()
            wrapped = cls(
                kdf=kdf,
                salt=base64.b64decode(data["salt"], validate=True),
                nonce=base64.b64decode(data["nonce"], validate=True),
                ciphertext=base64.b64decode(data["ciphertext"], validate=True),
            )
        except (KeyError, TypeError, ValueError):
            raise StoreError("wrapped key in the wallet file is damaged") from None
        if len(wrapped.salt) != 16 or len(wrapped.nonce) != 12:
            raise StoreError("wrapped key in the wallet file is damaged")
        return wrapped


def _associated_data(purpose: str, secret_name: str) -> bytes:
    return f"eid-app-wallet-v1:{purpose}:{secret_name}".encode("ascii")


def _derive(secret: str, salt: bytes, kdf: KdfParams) -> bytes:
    return Scrypt(salt=salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(secret.encode("utf-8"))


def wrap(
    private_key_der: bytes, secret: str, *, purpose: str, secret_name: str, kdf: KdfParams = DEFAULT_KDF
) -> WrappedKey:
    """Encrypt ``private_key_der`` under ``secret`` for the key slot ``purpose``."""
    salt, nonce = os.urandom(16), os.urandom(12)
    aead = AESGCM(_derive(secret, salt, kdf.check()))
    ciphertext = aead.encrypt(nonce, private_key_der, _associated_data(purpose, secret_name))
    return WrappedKey(kdf=kdf, salt=salt, nonce=nonce, ciphertext=ciphertext)


def unwrap(wrapped: WrappedKey, secret: str, *, purpose: str, secret_name: str) -> bytes:
    """Decrypt a wrapped key; a wrong secret raises ``IncorrectSecret``."""
    aead = AESGCM(_derive(secret, wrapped.salt, wrapped.kdf.check()))
    try:
        return aead.decrypt(wrapped.nonce, wrapped.ciphertext, _associated_data(purpose, secret_name))
    except InvalidTag:
        raise IncorrectSecret() from None
