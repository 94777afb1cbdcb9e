"""PIN and PUK rules, and wrapping keys under them (AES-256-GCM over scrypt)."""

from __future__ import annotations

import re

import pytest

from wallet.errors import IncorrectSecret, PinFormatError, StoreError
from wallet.pin import PIN1, PIN2, PUK, KdfParams, WrappedKey, generate_puk, unwrap, wrap

from .conftest import CHEAP_KDF


@pytest.mark.parametrize("pin", ["1234", "000000000000", "0123"])
def test_pin1_accepts_4_to_12_digits(pin: str) -> None:
    assert PIN1.check(pin) == pin


@pytest.mark.parametrize("pin", ["123", "1234567890123", "12a4", "", " 1234", "١٢٣٤", "12³4", "-123"])
def test_pin1_refuses_the_rest(pin: str) -> None:
    with pytest.raises(PinFormatError, match="PIN1 must be 4-12 digits"):
        PIN1.check(pin)


@pytest.mark.parametrize(("pin", "ok"), [("1234", False), ("12345", True), ("123456789012", True)])
def test_pin2_needs_5_to_12_digits(pin: str, ok: bool) -> None:
    if ok:
        assert PIN2.check(pin) == pin
    else:
        with pytest.raises(PinFormatError, match="PIN2 must be 5-12 digits"):
            PIN2.check(pin)


def test_puk_is_8_digits_and_random() -> None:
    puks = {generate_puk() for _ in range(50)}
    assert all(re.fullmatch(r"\d{8}", puk) for puk in puks)
    assert len(puks) > 45
    with pytest.raises(PinFormatError, match="PUK must be 8 digits"):
        PUK.check("1234567")


def test_wrap_round_trip_and_wrong_secret() -> None:
    wrapped = wrap(b"private key", "1234", purpose="auth", secret_name="pin", kdf=CHEAP_KDF)
    assert unwrap(wrapped, "1234", purpose="auth", secret_name="pin") == b"private key"
    with pytest.raises(IncorrectSecret):
        unwrap(wrapped, "1235", purpose="auth", secret_name="pin")


def test_the_purpose_is_authenticated() -> None:
    """A signing-key blob moved into the authentication slot does not open."""
    wrapped = wrap(b"signing key", "12345", purpose="sign", secret_name="pin", kdf=CHEAP_KDF)
    with pytest.raises(IncorrectSecret):
        unwrap(wrapped, "12345", purpose="auth", secret_name="pin")
    with pytest.raises(IncorrectSecret):
        unwrap(wrapped, "12345", purpose="sign", secret_name="puk")


def test_each_wrap_has_its_own_salt_and_nonce() -> None:
    one = wrap(b"k", "1234", purpose="auth", secret_name="pin", kdf=CHEAP_KDF)
    two = wrap(b"k", "1234", purpose="auth", secret_name="pin", kdf=CHEAP_KDF)
    assert one.salt != two.salt and one.nonce != two.nonce and one.ciphertext != two.ciphertext
    assert len(one.salt) == 16 and len(one.nonce) == 12
    assert len(one.ciphertext) == 1 + 16  # GCM: no padding, a 16-byte tag


def test_default_cost_is_memory_hard() -> None:
    wrapped = wrap(b"k", "1234", purpose="auth", secret_name="pin")
    assert (wrapped.kdf.n, wrapped.kdf.r, wrapped.kdf.p) == (2**15, 8, 1)
    assert WrappedKey.from_json(wrapped.to_json()) == wrapped


def test_hostile_kdf_parameters_are_refused() -> None:
    data = wrap(b"k", "1234", purpose="auth", secret_name="pin", kdf=CHEAP_KDF).to_json()
    with pytest.raises(StoreError, match="scrypt parameters"):
        WrappedKey.from_json({**data, "n": 2**30})
    with pytest.raises(StoreError, match="damaged"):
        WrappedKey.from_json({**data, "nonce": "AAAA"})
    with pytest.raises(StoreError, match="scrypt parameters"):
        KdfParams(n=1000).check()
