"""Fixtures for the citizen app: a protocol-shape fake service and enrolled wallets.

Most tests use cheap scrypt parameters (n=2**10) so the suite stays quick; the
default cost is exercised by the CLI tests, which go through ``eid-app`` as shipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wallet.client import DeviceCredentials, ServiceClient
from wallet.enrolment import Enrolled, enroll
from wallet.pin import KdfParams
from wallet.store import Wallet

from .fake_service import FakeService

CHEAP_KDF = KdfParams(n=2**10, r=8, p=1)
PIN1 = "1234"
PIN2 = "12345"


@pytest.fixture
def fake() -> FakeService:
    return FakeService()


@pytest.fixture
def wallet(tmp_path: Path) -> Wallet:
    return Wallet(tmp_path / "wallet")


@pytest.fixture
def enrolled(fake: FakeService, wallet: Wallet) -> Enrolled:
    """A file wallet enrolled with the fake, PIN1 ``1234``, PIN2 ``12345``."""
    with ServiceClient(fake.base_url, transport=fake.transport()) as client:
        return enroll(
            wallet, client, activation_code=fake.new_activation_code(), pin1=PIN1, pin2=PIN2, kdf=CHEAP_KDF
        )


@pytest.fixture
def app_client(fake: FakeService, wallet: Wallet, enrolled: Enrolled) -> Iterator[ServiceClient]:
    """A client making app calls for the enrolled wallet."""
    device = DeviceCredentials(device_id=enrolled.state.device_id, key=wallet.device_key())
    with ServiceClient(fake.base_url, device=device, transport=fake.transport()) as client:
        yield client
