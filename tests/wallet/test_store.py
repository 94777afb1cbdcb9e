"""The wallet directory: permissions, no private key in clear, atomic writes."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from wallet.client import ServiceClient
from wallet.enrolment import Enrolled, enroll
from wallet.errors import StoreError
from wallet.pin import unwrap
from wallet.state import FileKey, Purpose
from wallet.store import Wallet

from .conftest import CHEAP_KDF, PIN1, PIN2
from .fake_service import FakeService


def mode(path: os.PathLike[str]) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_permissions(wallet: Wallet, enrolled: Enrolled) -> None:
    assert mode(wallet.directory) == 0o700
    assert mode(wallet.file) == 0o600
    assert mode(wallet.directory / "device.key") == 0o600
    assert sorted(p.name for p in wallet.directory.iterdir()) == [".lock", "device.key", "wallet.json"]


def test_an_existing_directory_is_tightened(fake: FakeService, tmp_path: Path) -> None:
    directory = tmp_path / "open"
    directory.mkdir()
    directory.chmod(0o755)
    with ServiceClient(fake.base_url, transport=fake.transport()) as client:
        enroll(
            Wallet(directory),
            client,
            activation_code=fake.new_activation_code(),
            pin1=PIN1,
            pin2=PIN2,
            kdf=CHEAP_KDF,
        )
    assert mode(directory) == 0o700


def _private_values(der: bytes) -> list[bytes]:
    key = serialization.load_der_private_key(der, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    scalar = key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, "big")
    return [der, scalar]


def test_private_keys_are_not_in_clear(wallet: Wallet, enrolled: Enrolled) -> None:
    raw = wallet.file.read_bytes()
    state = wallet.load()
    for purpose, pin in ((Purpose.AUTH, PIN1), (Purpose.SIGN, PIN2)):
        storage = state.key(purpose).storage
        assert isinstance(storage, FileKey)
        der = unwrap(storage.pin, pin, purpose=purpose.value, secret_name="pin")
        assert unwrap(storage.puk, enrolled.puk or "", purpose=purpose.value, secret_name="puk") == der
        for secret in _private_values(der):
            for encoded in (
                secret,
                secret.hex().encode(),
                secret.hex().upper().encode(),
                base64.b64encode(secret),
            ):
                assert encoded not in raw, f"{purpose} private key in clear"
            assert secret[:16] not in raw
    assert b"PRIVATE KEY" not in raw
    assert enrolled.puk is not None and enrolled.puk.encode() not in raw  # shown once, never stored


def test_device_key_is_plain_pkcs8(wallet: Wallet, enrolled: Enrolled, fake: FakeService) -> None:
    pem = (wallet.directory / "device.key").read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, not encrypted
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    registered = fake.devices[enrolled.state.device_id].public_key
    assert registered.public_numbers() == key.public_key().public_numbers()


def test_state_round_trips(wallet: Wallet, enrolled: Enrolled) -> None:
    assert wallet.load() == enrolled.state
    data = json.loads(wallet.file.read_text())
    assert data["format"] == "eid-app-wallet-v1"
    assert data["server_url"] == "https://eid.example"
    assert data["keys"]["auth"]["storage"]["pin"]["cipher"] == "aes-256-gcm"


def test_a_failed_write_leaves_the_old_file(
    wallet: Wallet, enrolled: Enrolled, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = wallet.file.read_bytes()

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(StoreError, match="No space left"):
        wallet.save(wallet.load())
    monkeypatch.undo()
    assert wallet.file.read_bytes() == before
    assert sorted(p.name for p in wallet.directory.iterdir()) == [".lock", "device.key", "wallet.json"]


def test_a_write_is_fsynced_before_it_replaces(
    wallet: Wallet, enrolled: Enrolled, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr("os.fsync", fsync)
    monkeypatch.setattr("os.replace", replace)
    wallet.save(wallet.load())
    assert events == ["fsync", "replace", "fsync"]  # file, rename, directory


def test_no_wallet_and_damaged_wallet(tmp_path: Path, wallet: Wallet, enrolled: Enrolled) -> None:
    with pytest.raises(StoreError, match="no wallet in .*: run eid-app enroll first"):
        Wallet(tmp_path / "none").load()
    wallet.file.write_text('{"format": "eid-app-wallet-v1"}')
    with pytest.raises(StoreError, match="damaged"):
        wallet.load()
    wallet.file.write_text("not json")
    with pytest.raises(StoreError, match="damaged"):
        wallet.load()
