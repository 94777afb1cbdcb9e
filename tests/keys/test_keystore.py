"""The key store contract, run against every backend; ``cryptography`` is the witness."""

from __future__ import annotations

import itertools
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pkcs11
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from keys.errors import InvalidKeyRequest, KeyAlreadyExists, KeyNotFound, KeyStoreUnavailable
from keys.keystore import (
    FileKeyStore,
    HashAlgorithm,
    KeyAlgorithm,
    KeyInfo,
    KeyStore,
    Padding,
    Pkcs11KeyStore,
)

from .conftest import USER_PIN, Backend, SharedKeys, SoftHsmBackend

_HASHES: dict[HashAlgorithm, type[hashes.HashAlgorithm]] = {
    HashAlgorithm.SHA256: hashes.SHA256,
    HashAlgorithm.SHA384: hashes.SHA384,
    HashAlgorithm.SHA512: hashes.SHA512,
}
_EXPECTED = {
    KeyAlgorithm.EC_P256: ("ec", "secp256r1"),
    KeyAlgorithm.EC_P384: ("ec", "secp384r1"),
    KeyAlgorithm.RSA_2048: ("rsa", 2048),
    KeyAlgorithm.RSA_3072: ("rsa", 3072),
}
_BAD_IDS = [
    "../x",
    "",
    "A",
    "x/y",
    "-x",
    ".x",
    "a" * 65,
    "x\n",
]


def _public(info: KeyInfo) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    key = serialization.load_der_public_key(info.public_key_der)
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return key


def _verify(info: KeyInfo, signature: bytes, data: bytes, hash_: HashAlgorithm, pad: Padding) -> None:
    key, digest = _public(info), _HASHES[hash_]()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(digest))  # DER Ecdsa-Sig-Value
    elif pad is Padding.PSS:
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        key.verify(signature, data, pss, digest)
    else:
        key.verify(signature, data, padding.PKCS1v15(), digest)


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_created_key_reports_its_public_key(
    shared_keys: SharedKeys, shared_store: KeyStore, algorithm: KeyAlgorithm
) -> None:
    info = shared_keys.created[algorithm]
    assert (info.key_id, info.algorithm) == (algorithm.value, algorithm)
    key = _public(info)
    kind, size = _EXPECTED[algorithm]
    if kind == "ec":
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == size
    else:
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == size
        assert key.public_numbers().e == 65537
    # A proper DER SubjectPublicKeyInfo: byte for byte what cryptography writes.
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_bytes(serialization.Encoding.DER, spki) == info.public_key_der
    assert shared_store.key_info(algorithm.value) == info  # persisted, read back


def test_list_keys_sorted_by_id(store: KeyStore) -> None:
    for key_id in ["beta", "alpha-2", "gamma", "alpha"]:
        store.create_key(key_id, KeyAlgorithm.EC_P256)
    infos = store.list_keys()
    assert [info.key_id for info in infos] == ["alpha", "alpha-2", "beta", "gamma"]
    assert infos == [store.key_info(info.key_id) for info in infos]
    assert store.has_key("beta") and not store.has_key("delta")


def test_empty_store_lists_nothing_and_checks(store: KeyStore) -> None:
    assert store.list_keys() == []
    store.check()


def test_shared_store_lists_every_algorithm(shared_keys: SharedKeys, shared_store: KeyStore) -> None:
    expected = sorted(shared_keys.created.values(), key=lambda info: info.key_id)
    assert shared_store.list_keys() == expected
    shared_store.check()


@pytest.mark.parametrize(
    ("algorithm", "hash_algorithm", "pad"),
    list(itertools.product(KeyAlgorithm, HashAlgorithm, Padding)),
)
def test_sign_verifies_with_cryptography(
    shared_keys: SharedKeys,
    shared_store: KeyStore,
    algorithm: KeyAlgorithm,
    hash_algorithm: HashAlgorithm,
    pad: Padding,
) -> None:
    data = b"document to sign " * 1000
    info = shared_keys.created[algorithm]
    signature = shared_store.sign(info.key_id, data, hash_algorithm=hash_algorithm, padding=pad)
    _verify(info, signature, data, hash_algorithm, pad)
    with pytest.raises(InvalidSignature):
        _verify(info, signature, data + b"!", hash_algorithm, pad)


def test_sign_from_many_threads(shared_keys: SharedKeys, shared_store: KeyStore) -> None:
    info = shared_keys.created[KeyAlgorithm.EC_P256]

    def sign(n: int) -> tuple[bytes, bytes]:
        data = f"message {n}".encode()
        return data, shared_store.sign(info.key_id, data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(sign, range(64)))
    for data, signature in results:
        _verify(info, signature, data, HashAlgorithm.SHA256, Padding.PKCS1V15)


def test_duplicate_key_id_is_refused(store: KeyStore) -> None:
    first = store.create_key("dup", KeyAlgorithm.EC_P256)
    for algorithm in (KeyAlgorithm.EC_P256, KeyAlgorithm.EC_P384):
        with pytest.raises(KeyAlreadyExists):
            store.create_key("dup", algorithm)
    assert store.key_info("dup") == first
    assert [info.key_id for info in store.list_keys()] == ["dup"]


def test_unknown_key(store: KeyStore) -> None:
    store.create_key("present", KeyAlgorithm.EC_P256)
    with pytest.raises(KeyNotFound):
        store.key_info("absent")
    with pytest.raises(KeyNotFound):
        store.sign("absent", b"data")
    assert not store.has_key("absent")


@pytest.mark.parametrize("key_id", _BAD_IDS)
def test_bad_key_id_is_refused(store: KeyStore, key_id: str) -> None:
    with pytest.raises(InvalidKeyRequest):
        store.create_key(key_id, KeyAlgorithm.EC_P256)
    with pytest.raises(InvalidKeyRequest):
        store.key_info(key_id)
    with pytest.raises(InvalidKeyRequest):
        store.sign(key_id, b"data")
    assert store.list_keys() == []


def test_key_info_carries_no_private_material(shared_store: KeyStore) -> None:
    assert set(KeyInfo.__slots__) == {"key_id", "algorithm", "public_key_der"}
    for info in shared_store.list_keys():
        with pytest.raises(ValueError):
            serialization.load_der_private_key(info.public_key_der, password=None)


def test_wrong_secret_is_unavailable(backend: Backend) -> None:
    location = backend.fresh()
    creator = backend.open(location)
    creator.create_key("k", KeyAlgorithm.EC_P256)
    creator.close()
    # The file store only finds out when it decrypts; the token refuses the login.
    with pytest.raises(KeyStoreUnavailable, match="passphrase|wrong PIN"):
        backend.open(location, secret="wrong secret").check()


def test_file_private_key_is_encrypted_and_private(tmp_path: Path) -> None:
    keystore = FileKeyStore(tmp_path, "a passphrase")
    keystore.create_key("k", KeyAlgorithm.EC_P256)
    private = tmp_path / "k.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in private.read_bytes()
    with pytest.raises(TypeError):  # needs the passphrase
        serialization.load_pem_private_key(private.read_bytes(), password=None)


@pytest.mark.softhsm
def test_token_private_key_is_sensitive_and_sign_only(softhsm: SoftHsmBackend) -> None:
    label = softhsm.fresh()
    keystore = softhsm.open(label)
    try:
        keystore.create_key("k", KeyAlgorithm.RSA_2048)
        token = pkcs11.lib(softhsm.module).get_token(token_label=label)
        # No PIN: the store's login already covers every session of this process.
        with token.open() as session:
            key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="k")
            assert key[pkcs11.Attribute.ID] == b"k"
            assert key[pkcs11.Attribute.TOKEN] and key[pkcs11.Attribute.SENSITIVE]
            assert not key[pkcs11.Attribute.EXTRACTABLE]
            assert key[pkcs11.Attribute.SIGN] and not key[pkcs11.Attribute.DECRYPT]
            assert not key[pkcs11.Attribute.UNWRAP]
            with pytest.raises(pkcs11.exceptions.AttributeSensitive):
                key[pkcs11.Attribute.PRIVATE_EXPONENT]
    finally:
        keystore.close()


@pytest.mark.softhsm
def test_wrong_pin_is_unavailable_at_open(softhsm: SoftHsmBackend) -> None:
    with pytest.raises(KeyStoreUnavailable, match="wrong PIN"):
        softhsm.open(softhsm.fresh(), secret="0000")


@pytest.mark.softhsm
def test_unknown_token_label_is_unavailable(softhsm: SoftHsmBackend) -> None:
    with pytest.raises(KeyStoreUnavailable, match="no PKCS#11 token labelled 'no-such-token'"):
        softhsm.open("no-such-token")


def test_missing_module_is_unavailable(tmp_path: Path) -> None:
    missing = tmp_path / "libmissing.so"
    with pytest.raises(KeyStoreUnavailable, match="module not found"):
        Pkcs11KeyStore(module_path=str(missing), token_label="t", pin=USER_PIN)


def test_non_pkcs11_file_is_unavailable(tmp_path: Path) -> None:
    not_a_module = tmp_path / "libfake.so"
    not_a_module.write_bytes(b"not an ELF file")
    with pytest.raises(KeyStoreUnavailable, match="cannot load PKCS#11 module"):
        Pkcs11KeyStore(module_path=str(not_a_module), token_label="t", pin=USER_PIN)


@pytest.mark.softhsm
def test_closed_token_store_is_unavailable(softhsm: SoftHsmBackend) -> None:
    keystore = softhsm.open(softhsm.fresh())
    keystore.create_key("k", KeyAlgorithm.EC_P256)
    keystore.close()
    keystore.close()  # idempotent
    with pytest.raises(KeyStoreUnavailable, match="closed"):
        keystore.sign("k", b"data")


@pytest.mark.softhsm
def test_one_token_store_per_process(softhsm: SoftHsmBackend) -> None:
    """PKCS#11 login is per process and token: a second store cannot log in again."""
    label = softhsm.fresh()
    first = softhsm.open(label)
    with pytest.raises(KeyStoreUnavailable, match="already logged in"):
        softhsm.open(label)
    first.close()  # logs the process out, so a new store can log in
    softhsm.open(label).close()
