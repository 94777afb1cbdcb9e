"""Key store backend: a PKCS#11 token (an HSM, or SoftHSM2 in tests).

Each key is a token key pair whose ``CKA_LABEL`` is the key id and ``CKA_ID`` its
UTF-8 bytes. The private half is sensitive and not extractable, so the process only
ever holds handles. Data is hashed here with ``hashlib`` and only the digest goes to
the token: it keeps large documents off a slow device and makes every algorithm
sign the same way (ECDSA, RSA PKCS#1 v1.5 over a DigestInfo, RSA-PSS).

One store keeps one logged-in session, guarded by a lock. PKCS#11 login state is
per process and token, so open one ``Pkcs11KeyStore`` per token per process:
closing a store logs the whole process out of that token.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

import pkcs11
from asn1crypto.keys import ECDomainParameters, PublicKeyInfo, RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import PKCS11Error
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from ..errors import InvalidKeyRequest, KeyAlreadyExists, KeyNotFound, KeyStoreUnavailable
from ._base import _KEY_ID, HashAlgorithm, KeyAlgorithm, KeyInfo, KeyStore, Padding, check_key_id

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

_CURVES = {KeyAlgorithm.EC_P256: "secp256r1", KeyAlgorithm.EC_P384: "secp384r1"}

_HASHES: dict[HashAlgorithm, tuple[Mechanism, pkcs11.MGF]] = {
    HashAlgorithm.SHA256: (Mechanism.SHA256, pkcs11.MGF.SHA256),
    HashAlgorithm.SHA384: (Mechanism.SHA384, pkcs11.MGF.SHA384),
    HashAlgorithm.SHA512: (Mechanism.SHA512, pkcs11.MGF.SHA512),
}

# DER DigestInfo headers for PKCS#1 v1.5 (RFC 8017, section 9.2, note 1): CKM_RSA_PKCS
# pads whatever it is given, so the hash identifier must be prepended here.
_DIGEST_INFO = {
    HashAlgorithm.SHA256: bytes.fromhex("3031300d060960864801650304020105000420"),
    HashAlgorithm.SHA384: bytes.fromhex("3041300d060960864801650304020205000430"),
    HashAlgorithm.SHA512: bytes.fromhex("3051300d060960864801650304020305000440"),
}

_LOGIN_ERRORS = {
    "PinIncorrect": "wrong PIN",
    "PinLenRange": "wrong PIN",
    "PinLocked": "PIN locked",
    "UserAlreadyLoggedIn": "already logged in by another key store in this process",
}


def _load_module(module_path: str) -> Pkcs11Lib:
    """Load (or reuse: python-pkcs11 caches per path) and initialise the module."""
    if not os.path.isfile(module_path):
        raise KeyStoreUnavailable(f"PKCS#11 module not found: {module_path}")
    try:
        return pkcs11.lib(module_path)
    except PKCS11Error as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise KeyStoreUnavailable(f"cannot load PKCS#11 module {module_path}: {detail}") from None


class Pkcs11KeyStore(KeyStore):
    """Keys held by the PKCS#11 token labelled ``token_label``."""

    def __init__(self, *, module_path: str, token_label: str, pin: str) -> None:
        self._label = token_label
        self._lock = threading.Lock()
        lib = _load_module(module_path)
        try:
            token = lib.get_token(token_label=token_label)
        except pkcs11.NoSuchToken:
            raise KeyStoreUnavailable(f"no PKCS#11 token labelled {token_label!r} in {module_path}") from None
        except PKCS11Error as exc:
            raise KeyStoreUnavailable(f"cannot find token {token_label!r}: {type(exc).__name__}") from None
        try:
            self._session: pkcs11.Session | None = token.open(rw=True, user_pin=pin)
        except PKCS11Error as exc:
            reason = _LOGIN_ERRORS.get(type(exc).__name__, type(exc).__name__)
            raise KeyStoreUnavailable(f"cannot log in to token {token_label!r}: {reason}") from None

    @contextmanager
    def _open(self) -> Iterator[pkcs11.Session]:
        """The session, under the lock; token failures become ``KeyStoreUnavailable``."""
        with self._lock:
            if self._session is None:
                raise KeyStoreUnavailable(f"key store on token {self._label!r} is closed")
            try:
                yield self._session
            except PKCS11Error as exc:
                raise KeyStoreUnavailable(f"token {self._label!r} failed: {type(exc).__name__}") from None

    @staticmethod
    def _find(session: pkcs11.Session, key_id: str, cls: ObjectClass) -> pkcs11.Key:
        try:
            return session.get_key(object_class=cls, label=check_key_id(key_id))
        except pkcs11.NoSuchKey:
            raise KeyNotFound(f"no key {key_id!r} on the PKCS#11 token") from None
        except pkcs11.MultipleObjectsReturned:
            raise KeyStoreUnavailable(f"several token objects are labelled {key_id!r}") from None

    def create_key(self, key_id: str, algorithm: KeyAlgorithm) -> KeyInfo:
        check_key_id(key_id)
        try:
            algorithm = KeyAlgorithm(algorithm)
        except ValueError:
            raise InvalidKeyRequest(f"unsupported key algorithm {algorithm!r}") from None
        public: dict[Attribute, object] = {Attribute.TOKEN: True, Attribute.VERIFY: True}
        private: dict[Attribute, object] = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
        }
        with self._open() as session:
            # Checked under the lock: safe within this process, not across processes.
            if self._exists(session, key_id):
                raise KeyAlreadyExists(f"key {key_id!r} already exists")
            if algorithm.is_ec:
                key_type, bits = KeyType.EC, None
                public[Attribute.EC_PARAMS] = encode_named_curve_parameters(_CURVES[algorithm])
            else:
                key_type, bits = KeyType.RSA, algorithm.rsa_bits
                public[Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"  # 65537
            # Sign/verify only: no decrypt, unwrap or derive on a signing key.
            pub, _ = session.generate_keypair(
                key_type,
                bits,
                id=key_id.encode("utf-8"),
                label=key_id,
                store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                public_template=public,
                private_template=private,
            )
            return self._info(key_id, pub)

    @staticmethod
    def _info(key_id: str, public_key: pkcs11.Key) -> KeyInfo:
        """Build the SubjectPublicKeyInfo; ``encode_rsa_public_key`` gives bare PKCS#1."""
        if public_key.key_type is KeyType.EC:
            curve = ECDomainParameters.load(public_key[Attribute.EC_PARAMS]).chosen.native
            names = {name: alg for alg, name in _CURVES.items()}
            if curve not in names:
                raise KeyStoreUnavailable(f"key {key_id!r} uses unsupported curve {curve}")
            return KeyInfo(
                key_id=key_id,
                algorithm=names[curve],
                public_key_der=encode_ec_public_key(public_key),  # type: ignore[arg-type]
            )
        if public_key.key_type is KeyType.RSA:
            modulus = int.from_bytes(public_key[Attribute.MODULUS], "big")
            sizes = {2048: KeyAlgorithm.RSA_2048, 3072: KeyAlgorithm.RSA_3072}
            if modulus.bit_length() not in sizes:
                raise KeyStoreUnavailable(f"key {key_id!r} has unsupported RSA size")
            rsa_key = RSAPublicKey(
                {
                    "modulus": modulus,
                    "public_exponent": int.from_bytes(public_key[Attribute.PUBLIC_EXPONENT], "big"),
                }
            )
            spki = PublicKeyInfo({"algorithm": {"algorithm": "rsa"}, "public_key": rsa_key})
            return KeyInfo(key_id=key_id, algorithm=sizes[modulus.bit_length()], public_key_der=spki.dump())
        raise KeyStoreUnavailable(f"key {key_id!r} has unsupported type {public_key.key_type}")

    def key_info(self, key_id: str) -> KeyInfo:
        with self._open() as session:
            return self._info(key_id, self._find(session, key_id, ObjectClass.PUBLIC_KEY))

    def _private_ids(self, session: pkcs11.Session) -> list[str]:
        """Labels of private keys that are valid key ids; other objects are not ours."""
        found = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        labels = {obj[Attribute.LABEL] for obj in found}
        return sorted(label for label in labels if _KEY_ID.fullmatch(label))

    def list_keys(self) -> list[KeyInfo]:
        with self._open() as session:
            ids = self._private_ids(session)
            return [self._info(key_id, self._find(session, key_id, ObjectClass.PUBLIC_KEY)) for key_id in ids]

    @staticmethod
    def _exists(session: pkcs11.Session, key_id: str) -> bool:
        query = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: check_key_id(key_id)}
        return bool(list(session.get_objects(query)))  # exhausted, so the search is finished

    def has_key(self, key_id: str) -> bool:
        with self._open() as session:
            return self._exists(session, key_id)

    @staticmethod
    def _sign_digest(key: pkcs11.Key, digest: bytes, hash_alg: HashAlgorithm, pad: Padding) -> bytes:
        """Sign a digest made here; the token never sees the data itself."""
        if key.key_type is KeyType.EC:
            raw = key.sign(digest, mechanism=Mechanism.ECDSA)  # type: ignore[attr-defined]
            half = len(raw) // 2  # CKM_ECDSA answers r || s; X.509 and CMS want DER
            return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
        if pad is Padding.PSS:
            hash_mech, mgf = _HASHES[hash_alg]
            return key.sign(  # type: ignore[attr-defined, no-any-return]
                digest,
                mechanism=Mechanism.RSA_PKCS_PSS,
                mechanism_param=(hash_mech, mgf, len(digest)),
            )
        return key.sign(  # type: ignore[attr-defined, no-any-return]
            _DIGEST_INFO[hash_alg] + digest, mechanism=Mechanism.RSA_PKCS
        )

    def sign(
        self,
        key_id: str,
        data: bytes,
        *,
        hash_algorithm: HashAlgorithm = HashAlgorithm.SHA256,
        padding: Padding = Padding.PKCS1V15,
    ) -> bytes:
        try:
            hash_alg, pad = HashAlgorithm(hash_algorithm), Padding(padding)
        except ValueError:
            raise InvalidKeyRequest(f"unsupported hash {hash_algorithm!r} or padding {padding!r}") from None
        digest = hashlib.new(hash_alg.value, data).digest()
        with self._open() as session:
            key = self._find(session, key_id, ObjectClass.PRIVATE_KEY)
            return self._sign_digest(key, digest, hash_alg, pad)

    def check(self) -> None:
        """Sign a test digest with every key: proves the login and each key work."""
        digest = hashlib.sha256(b"key store check").digest()
        with self._open() as session:
            for key_id in self._private_ids(session):
                key = self._find(session, key_id, ObjectClass.PRIVATE_KEY)
                self._sign_digest(key, digest, HashAlgorithm.SHA256, Padding.PKCS1V15)

    def close(self) -> None:
        """Log out and close the session; later calls raise ``KeyStoreUnavailable``."""
        with self._lock:
            session, self._session = self._session, None
            if session is not None:
                # A token already gone or logged out has nothing left to release.
                with suppress(PKCS11Error):
                    session.close()
