"""Three wrong PINs block a key; the counter is on disk before the PIN is tried."""

from __future__ import annotations

import fcntl
import json
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from wallet import unlock
from wallet.enrolment import Enrolled
from wallet.errors import Blocked, PinFormatError, WrongPin
from wallet.pin import unwrap as real_unwrap
from wallet.state import Purpose
from wallet.store import Wallet

from .conftest import PIN1, PIN2


def tries_on_disk(wallet: Wallet) -> dict[str, int]:
    tries: dict[str, int] = json.loads(wallet.file.read_text())["tries"]
    return tries


def open_key(store: Wallet, purpose: Purpose, pin: str) -> bytes:
    with unlock.unlocked(store, purpose, pin) as signer:
        return signer.public_key_der


def test_three_wrong_pins_block_and_then_the_right_one_is_refused(wallet: Wallet, enrolled: Enrolled) -> None:
    with pytest.raises(WrongPin, match="wrong PIN1: 2 tries left"):
        open_key(wallet, Purpose.AUTH, "9999")
    assert tries_on_disk(wallet) == {"auth": 2, "sign": 3, "puk": 3}
    with pytest.raises(WrongPin, match="wrong PIN1: 1 try left"):
        open_key(wallet, Purpose.AUTH, "9998")
    with pytest.raises(Blocked, match="PIN1 is blocked"):
        open_key(wallet, Purpose.AUTH, "9997")
    assert tries_on_disk(wallet)["auth"] == 0
    with pytest.raises(Blocked, match="unblock --key auth"):
        open_key(wallet, Purpose.AUTH, PIN1)
    assert tries_on_disk(wallet)["auth"] == 0
    # The other key has its own PIN and counter.
    open_key(wallet, Purpose.SIGN, PIN2)


def test_a_right_pin_resets_the_counter(wallet: Wallet, enrolled: Enrolled) -> None:
    for wrong in ("11111", "22222"):
        with pytest.raises(WrongPin):
            open_key(wallet, Purpose.SIGN, wrong)
    assert tries_on_disk(wallet)["sign"] == 1
    open_key(wallet, Purpose.SIGN, PIN2)
    assert tries_on_disk(wallet)["sign"] == 3


def test_the_counter_is_written_before_the_pin_is_checked(
    wallet: Wallet, enrolled: Enrolled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killing the app while it checks a PIN must still cost the try."""
    seen: list[dict[str, int]] = []

    def crash(*args: object, **kwargs: object) -> bytes:
        seen.append(tries_on_disk(wallet))  # what a fresh process would read now
        raise KeyboardInterrupt  # the process dies mid-check

    monkeypatch.setattr("wallet.unlock.unwrap", crash)
    with pytest.raises(KeyboardInterrupt):
        open_key(wallet, Purpose.AUTH, PIN1)  # even the right PIN
    assert seen == [{"auth": 2, "sign": 3, "puk": 3}]
    assert tries_on_disk(wallet)["auth"] == 2


def test_the_try_holds_the_wallet_lock(
    wallet: Wallet, enrolled: Enrolled, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second process cannot run a try at the same time (and so spend one twice)."""
    locked: list[bool] = []

    def probe(*args: object, **kwargs: object) -> bytes:
        fd = os.open(wallet.directory / ".lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            locked.append(True)
        finally:
            os.close(fd)
        return real_unwrap(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("wallet.unlock.unwrap", probe)
    open_key(wallet, Purpose.AUTH, PIN1)
    assert locked == [True]


@pytest.mark.parametrize("pin", ["12", "abcd", "1234567890123"])
def test_a_malformed_pin_costs_no_try(wallet: Wallet, enrolled: Enrolled, pin: str) -> None:
    with pytest.raises(PinFormatError):
        open_key(wallet, Purpose.AUTH, pin)
    assert tries_on_disk(wallet)["auth"] == 3


def block(store: Wallet, purpose: Purpose) -> None:
    for _ in range(3):
        with pytest.raises((WrongPin, Blocked)):
            open_key(store, purpose, "000000")


def test_puk_unblocks_with_a_new_pin(wallet: Wallet, enrolled: Enrolled) -> None:
    assert enrolled.puk is not None
    block(wallet, Purpose.AUTH)
    unlock.unblock(wallet, Purpose.AUTH, puk=enrolled.puk, new_pin="4321")
    assert tries_on_disk(wallet) == {"auth": 3, "sign": 3, "puk": 3}
    with pytest.raises(WrongPin):
        open_key(wallet, Purpose.AUTH, PIN1)  # the old PIN is gone
    opened = open_key(wallet, Purpose.AUTH, "4321")
    # The same key under a new PIN: still the certified one.
    certified = x509.load_der_x509_certificate(enrolled.state.auth.certificate).public_key()
    assert opened == certified.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_unblock_checks_the_new_pin_rule_first(wallet: Wallet, enrolled: Enrolled) -> None:
    assert enrolled.puk is not None
    with pytest.raises(PinFormatError, match="PIN2 must be 5-12 digits"):
        unlock.unblock(wallet, Purpose.SIGN, puk=enrolled.puk, new_pin="1234")
    assert tries_on_disk(wallet)["puk"] == 3


def test_three_wrong_puks_block_the_puk(wallet: Wallet, enrolled: Enrolled) -> None:
    assert enrolled.puk is not None
    wrong = "00000000" if enrolled.puk != "00000000" else "11111111"
    with pytest.raises(WrongPin, match="wrong PUK: 2 tries left"):
        unlock.unblock(wallet, Purpose.SIGN, puk=wrong, new_pin="54321")
    with pytest.raises(WrongPin, match="wrong PUK: 1 try left"):
        unlock.unblock(wallet, Purpose.SIGN, puk=wrong, new_pin="54321")
    with pytest.raises(Blocked, match="PUK is blocked"):
        unlock.unblock(wallet, Purpose.SIGN, puk=wrong, new_pin="54321")
    with pytest.raises(Blocked, match="PUK is blocked"):
        unlock.unblock(wallet, Purpose.SIGN, puk=enrolled.puk, new_pin="54321")
    assert tries_on_disk(wallet)["puk"] == 0
    open_key(wallet, Purpose.SIGN, PIN2)  # the PIN still works


def test_the_puk_counter_is_written_before_the_puk_is_checked(
    wallet: Wallet, enrolled: Enrolled, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> bytes:
        raise KeyboardInterrupt

    assert enrolled.puk is not None
    monkeypatch.setattr("wallet.unlock.unwrap", crash)
    with pytest.raises(KeyboardInterrupt):
        unlock.unblock(wallet, Purpose.AUTH, puk=enrolled.puk, new_pin="4321")
    assert tries_on_disk(wallet)["puk"] == 2


def test_a_right_puk_resets_its_counter(wallet: Wallet, enrolled: Enrolled) -> None:
    assert enrolled.puk is not None
    wrong = "99999999" if enrolled.puk != "99999999" else "11111111"
    with pytest.raises(WrongPin):
        unlock.unblock(wallet, Purpose.AUTH, puk=wrong, new_pin="4321")
    unlock.unblock(wallet, Purpose.AUTH, puk=enrolled.puk, new_pin="4321")
    assert tries_on_disk(wallet)["puk"] == 3


def test_counter_survives_a_new_process(wallet: Wallet, enrolled: Enrolled) -> None:
    with pytest.raises(WrongPin):
        open_key(wallet, Purpose.AUTH, "9999")
    assert Wallet(wallet.directory).load().tries.auth == 2
