"""The key store: one interface, two backends (encrypted files, PKCS#11)."""

from ._base import HashAlgorithm, KeyAlgorithm, KeyInfo, KeyStore, Padding, check_key_id
from ._files import FileKeyStore
from ._pkcs11 import Pkcs11KeyStore

__all__ = [
    "FileKeyStore",
    "HashAlgorithm",
    "KeyAlgorithm",
    "KeyInfo",
    "KeyStore",
    "Padding",
    "Pkcs11KeyStore",
    "check_key_id",
]
