"""Key store backend: encrypted PKCS#8 files in a directory (the embedded default).

Each key is ``<key_id>.key``: PEM, PKCS#8, encrypted with the store passphrase
(PBES2, AES-256), mode 0600. Its public key sits beside it as ``<key_id>.pub`` so
listing needs no passphrase. Decrypted keys are kept in process memory once loaded;
that is a cache of the files, not state another instance needs.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ..errors import KeyAlreadyExists, KeyNotFound, KeyStoreUnavailable
from ._base import HashAlgorithm, KeyAlgorithm, KeyInfo, KeyStore, Padding, check_key_id

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_HASHES: dict[HashAlgorithm, type[hashes.HashAlgorithm]] = {
    HashAlgorithm.SHA256: hashes.SHA256,
    HashAlgorithm.SHA384: hashes.SHA384,
    HashAlgorithm.SHA512: hashes.SHA512,
}


def algorithm_of(public_key: object) -> KeyAlgorithm:
    """Name the algorithm of a ``cryptography`` public or private key."""
    if isinstance(public_key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        curves = {"secp256r1": KeyAlgorithm.EC_P256, "secp384r1": KeyAlgorithm.EC_P384}
        if public_key.curve.name in curves:
            return curves[public_key.curve.name]
    if isinstance(public_key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        sizes = {2048: KeyAlgorithm.RSA_2048, 3072: KeyAlgorithm.RSA_3072}
        if public_key.key_size in sizes:
            return sizes[public_key.key_size]
    raise KeyStoreUnavailable(f"unsupported key type {type(public_key).__name__}")


def generate_private_key(algorithm: KeyAlgorithm) -> _PrivateKey:
    if algorithm is KeyAlgorithm.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm is KeyAlgorithm.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=algorithm.rsa_bits)


def sign_with(key: _PrivateKey, data: bytes, hash_algorithm: HashAlgorithm, pad: Padding) -> bytes:
    """Sign with a software key; ECDSA signatures are DER encoded."""
    digest = _HASHES[hash_algorithm]()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(digest))
    if pad is Padding.PSS:
        return key.sign(data, padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), digest)
    return key.sign(data, padding.PKCS1v15(), digest)


class FileKeyStore(KeyStore):
    """Keys as passphrase-encrypted PKCS#8 files in ``directory``."""

    def __init__(self, directory: Path, passphrase: str) -> None:
        if not passphrase:
            raise KeyStoreUnavailable("the file key store needs a passphrase")
        self._dir = Path(directory)
        self._passphrase = passphrase.encode("utf-8")
        self._loaded: dict[str, _PrivateKey] = {}
        self._lock = threading.Lock()
        try:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise KeyStoreUnavailable(f"cannot create key directory {self._dir}: {exc}") from exc

    def _private_path(self, key_id: str) -> Path:
        return self._dir / f"{check_key_id(key_id)}.key"

    def _public_path(self, key_id: str) -> Path:
        return self._dir / f"{check_key_id(key_id)}.pub"

    def create_key(self, key_id: str, algorithm: KeyAlgorithm) -> KeyInfo:
        private_path = self._private_path(key_id)
        key = generate_private_key(KeyAlgorithm(algorithm))
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with self._lock:
            # O_EXCL: two processes creating the same id cannot overwrite each other.
            try:
                fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                raise KeyAlreadyExists(f"key {key_id!r} already exists") from None
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            tmp = self._public_path(key_id).with_suffix(".pub.tmp")
            tmp.write_bytes(public_pem)
            os.replace(tmp, self._public_path(key_id))
            self._loaded[key_id] = key
        return self._info(key_id, key.public_key())

    @staticmethod
    def _info(key_id: str, public_key: object) -> KeyInfo:
        assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        return KeyInfo(
            key_id=key_id,
            algorithm=algorithm_of(public_key),
            public_key_der=public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )

    def key_info(self, key_id: str) -> KeyInfo:
        path = self._public_path(key_id)
        try:
            public_key = serialization.load_pem_public_key(path.read_bytes())
        except FileNotFoundError:
            raise KeyNotFound(f"no key {key_id!r} in the file key store") from None
        return self._info(key_id, public_key)

    def list_keys(self) -> list[KeyInfo]:
        ids = sorted(p.name.removesuffix(".key") for p in self._dir.glob("*.key"))
        return [self.key_info(key_id) for key_id in ids]

    def has_key(self, key_id: str) -> bool:
        return self._private_path(key_id).exists()

    def _private_key(self, key_id: str) -> _PrivateKey:
        key = self._loaded.get(key_id)
        if key is not None:
            return key
        path = self._private_path(key_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(f"no key {key_id!r} in the file key store") from None
        except OSError as exc:
            raise KeyStoreUnavailable(f"cannot read key {key_id!r}: {exc}") from exc
        try:
            loaded = serialization.load_pem_private_key(data, password=self._passphrase)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyStoreUnavailable(
                f"cannot decrypt key {key_id!r} in {self._dir}: wrong key store passphrase "
                "(EID_KEYSTORE__PASSPHRASE) or a damaged file"
            ) from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeyStoreUnavailable(f"key {key_id!r} has an unsupported type")
        with self._lock:
            self._loaded[key_id] = loaded
        return loaded

    def sign(
        self,
        key_id: str,
        data: bytes,
        *,
        hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
        padding: Padding = Padding.PKCS1V15,
    ) -> bytes:
        return sign_with(self._private_key(key_id), data, hash_algorithm, padding)

    def check(self) -> None:
        if not os.access(self._dir, os.R_OK | os.W_OK):
            raise KeyStoreUnavailable(f"key directory {self._dir} is not readable and writable")
        for path in sorted(self._dir.glob("*.key")):
            self._private_key(path.name.removesuffix(".key"))
