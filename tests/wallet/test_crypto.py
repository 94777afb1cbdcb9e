"""Proofs of possession, digest signing and verification codes, checked with cryptography."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from wallet.crypto import Curve, SoftwareSigner, pop_message, prove_possession, verification_code
from wallet.errors import ProtocolError


def test_pop_message_bytes() -> None:
    challenge = bytes(range(32))
    assert pop_message("auth", challenge) == b"eid-pop-v1\x00auth\x00" + challenge
    assert pop_message("sign", b"\x00\xff") == b"eid-pop-v1\x00sign\x00\x00\xff"
    assert pop_message("device", b"") == bytes.fromhex("6569642d706f702d7631 00 646576696365 00")


@pytest.mark.parametrize(
    ("curve", "hash_alg"), [(Curve.P256, hashes.SHA256()), (Curve.P384, hashes.SHA384())]
)
def test_proof_of_possession_verifies(curve: Curve, hash_alg: hashes.HashAlgorithm) -> None:
    key = curve.generate()
    challenge = b"\x07" * 32
    proof = prove_possession(SoftwareSigner(key), purpose="sign", challenge=challenge, curve=curve)
    # The witness hashes the message itself: ECDSA with the curve's hash, DER signature.
    key.public_key().verify(proof, b"eid-pop-v1\x00sign\x00" + challenge, ec.ECDSA(hash_alg))
    with pytest.raises(InvalidSignature):
        key.public_key().verify(proof, b"eid-pop-v1\x00auth\x00" + challenge, ec.ECDSA(hash_alg))
    assert utils.decode_dss_signature(proof)  # DER Ecdsa-Sig-Value


@pytest.mark.parametrize("name", ["sha256", "sha384", "sha512"])
def test_digest_is_signed_as_is(name: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    document = b"a PDF's signed attributes"
    digest = hashlib.new(name, document).digest()
    signature = SoftwareSigner(key).sign_digest(digest, name)
    algorithms: dict[str, hashes.HashAlgorithm] = {
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
    }
    algorithm = algorithms[name]
    key.public_key().verify(signature, digest, ec.ECDSA(utils.Prehashed(algorithm)))
    # Same as signing the document itself: the digest was not hashed again.
    key.public_key().verify(signature, document, ec.ECDSA(algorithm))


def test_digest_of_the_wrong_length_is_refused() -> None:
    signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ProtocolError, match="not a sha384 digest"):
        signer.sign_digest(b"\x00" * 32, "sha384")
    with pytest.raises(ProtocolError, match="unsupported hash"):
        signer.sign_digest(b"\x00" * 20, "sha1")


def test_public_key_is_spki() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    loaded = serialization.load_der_public_key(SoftwareSigner(key).public_key_der)
    assert isinstance(loaded, ec.EllipticCurvePublicKey) and loaded.curve.name == "secp384r1"


@pytest.mark.parametrize(
    ("hash_value", "code"),
    [
        (hashlib.sha256(b"Hello World!").digest(), "7712"),
        (hashlib.sha256(b"Go ahead, make my day.").digest(), "7782"),
        (hashlib.sha256(b"You're gonna need a bigger boat.").digest(), "1464"),
        (hashlib.sha256(b"Say 'hello' to my little friend!").digest(), "4240"),
        # The two bytes are the hash itself: last two bytes of SHA-256(1B BB) are 86 FB,
        # 34555 mod 10000 = 4555. (Reading 0x1BBB directly would give 7099.)
        (b"\x1b\xbb", "4555"),
    ],
)
def test_verification_code_vectors(hash_value: bytes, code: str) -> None:
    assert verification_code(hash_value) == code


def test_verification_code_is_zero_padded() -> None:
    # Search a small range for a hash whose code starts with 0; the check needs one.
    for i in range(10_000):
        value = i.to_bytes(4, "big")
        if int.from_bytes(hashlib.sha256(value).digest()[-2:], "big") % 10000 < 10:
            assert len(verification_code(value)) == 4 and verification_code(value).startswith("000")
            return
    pytest.fail("no short code found")
