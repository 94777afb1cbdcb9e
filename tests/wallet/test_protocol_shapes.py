"""PROTOCOL-SHAPE tests: the app against the fake service (``fake_service.py``).

They check that requests have the shapes of docs/protocol.md and that the app reacts
to answers as it should. They do not show the app works with the real server; the
end-to-end tests against the real server do that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from wallet.approval import Clock, approve, next_request, refuse
from wallet.client import DeviceCredentials, ServiceClient
from wallet.crypto import Curve
from wallet.enrolment import Enrolled, enroll
from wallet.errors import (
    NothingPending,
    PinFormatError,
    ProtocolError,
    ServerError,
    StoreError,
    VerificationCodeMismatch,
    WalletError,
    WrongPin,
)
from wallet.store import Wallet

from .conftest import CHEAP_KDF, PIN1, PIN2
from .fake_service import CITIZEN, FakeService

HELLO = hashlib.sha256(b"Hello World!").digest()


def bodies(fake: FakeService) -> list[tuple[str, str, object]]:
    return [
        (call.method, call.url.path, json.loads(call.content) if call.content else None)
        for call in fake.calls
    ]


# -- enrolment -------------------------------------------------------------------------


def test_enrolment_requests(fake: FakeService, enrolled: Enrolled) -> None:
    assert fake.violations == []
    (m1, p1, start), (m2, p2, complete) = bodies(fake)
    assert (m1, p1) == ("POST", "/api/v1/enrolment")
    assert start == {"activation_code": "KQ7M-2R9D-0001"}
    assert (m2, p2) == ("POST", "/api/v1/enrolment/enr-2/complete")
    assert isinstance(complete, dict) and set(complete) == {"auth_key", "sign_key", "device_key"}
    assert all(set(complete[k]) == {"public_key", "proof"} for k in complete)
    assert all("authorization" not in call.headers for call in fake.calls)
    assert all(call.headers["content-type"] == "application/json" for call in fake.calls)


def test_enrolment_keeps_what_the_service_issued(fake: FakeService, enrolled: Enrolled) -> None:
    state = enrolled.state
    device = fake.devices[state.device_id]
    assert state.auth.certificate == device.auth_certificate
    assert state.sign.certificate == device.sign_certificate
    assert state.chain == (fake.ca_der,)
    assert state.citizen.to_json() == CITIZEN
    assert state.server_url == "https://eid.example"
    assert enrolled.puk is not None and len(enrolled.puk) == 8


def test_p384_enrolment(fake: FakeService, wallet: Wallet) -> None:
    with ServiceClient(fake.base_url, transport=fake.transport()) as client:
        enrolled = enroll(
            wallet,
            client,
            activation_code=fake.new_activation_code(),
            pin1=PIN1,
            pin2=PIN2,
            curve=Curve.P384,
            kdf=CHEAP_KDF,
        )
    assert fake.violations == []  # P-384 proofs checked with SHA-384
    for der in (enrolled.state.auth.certificate, enrolled.state.sign.certificate):
        key = x509.load_der_x509_certificate(der).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1"
    device = fake.devices[enrolled.state.device_id].public_key
    assert device.curve.name == "secp256r1"


@pytest.mark.parametrize(("pin1", "pin2"), [("123", PIN2), (PIN1, "1234"), ("12345678901234", PIN2)])
def test_bad_pins_fail_before_anything_is_sent(
    fake: FakeService, wallet: Wallet, pin1: str, pin2: str
) -> None:
    with ServiceClient(fake.base_url, transport=fake.transport()) as client, pytest.raises(PinFormatError):
        enroll(
            wallet, client, activation_code=fake.new_activation_code(), pin1=pin1, pin2=pin2, kdf=CHEAP_KDF
        )
    assert fake.calls == []
    assert not wallet.exists()


def test_an_existing_wallet_is_not_overwritten(fake: FakeService, wallet: Wallet, enrolled: Enrolled) -> None:
    before = wallet.file.read_bytes()
    fake.calls.clear()
    with ServiceClient(fake.base_url, transport=fake.transport()) as client, pytest.raises(StoreError):
        enroll(
            wallet, client, activation_code=fake.new_activation_code(), pin1=PIN1, pin2=PIN2, kdf=CHEAP_KDF
        )
    assert fake.calls == []  # the activation code is still good
    assert wallet.file.read_bytes() == before


def test_rejected_activation_code_shows_the_problem_detail(fake: FakeService, wallet: Wallet) -> None:
    with (
        ServiceClient(fake.base_url, transport=fake.transport()) as client,
        pytest.raises(ServerError, match="^The activation code is not valid.$") as caught,
    ):
        enroll(wallet, client, activation_code="NOPE", pin1=PIN1, pin2=PIN2, kdf=CHEAP_KDF)
    assert caught.value.status == 400
    assert caught.value.problem_type == "https://eid.example/problems/activation-rejected"
    assert not wallet.exists()


class WrongKeyFake(FakeService):
    """Certifies a key the app did not send."""

    def _certificate(self, public_key: ec.EllipticCurvePublicKey, purpose: str) -> bytes:
        return super()._certificate(ec.generate_private_key(ec.SECP256R1()).public_key(), purpose)


def test_a_certificate_for_another_key_is_refused(wallet: Wallet) -> None:
    fake = WrongKeyFake()
    with (
        ServiceClient(fake.base_url, transport=fake.transport()) as client,
        pytest.raises(ProtocolError, match="authentication certificate is for a different key"),
    ):
        enroll(
            wallet, client, activation_code=fake.new_activation_code(), pin1=PIN1, pin2=PIN2, kdf=CHEAP_KDF
        )
    assert not wallet.exists()


# -- requests --------------------------------------------------------------------------


def test_pending_list(fake: FakeService, app_client: ServiceClient) -> None:
    fake.open_request("auth", HELLO)
    fake.open_request(
        "sign", hashlib.sha384(b"doc").digest(), hash_algorithm="sha384", display_text="Sign a.pdf"
    )
    first, second = app_client.pending_requests()
    assert (first.kind, first.verification_code, first.code_matches) == ("auth", "7712", True)
    assert (second.kind, second.hash_algorithm, second.display_text) == ("sign", "sha384", "Sign a.pdf")
    assert fake.violations == []


def test_approve_auth(
    fake: FakeService, wallet: Wallet, app_client: ServiceClient, enrolled: Enrolled
) -> None:
    request_id = fake.open_request("auth", HELLO)
    result = approve(wallet, app_client, next_request(app_client), pin=PIN1)
    assert (result.id, result.state) == (request_id, "completed")
    assert fake.violations == []
    answer = fake.requests[request_id].answers[0]
    assert set(answer) == {"decision", "certificate", "signature"} and answer["decision"] == "approve"


@pytest.mark.parametrize("hash_algorithm", ["sha256", "sha384", "sha512"])
def test_approve_sign(
    fake: FakeService, wallet: Wallet, app_client: ServiceClient, hash_algorithm: str
) -> None:
    request_id = fake.open_request(
        "sign", hashlib.new(hash_algorithm, b"doc").digest(), hash_algorithm=hash_algorithm
    )
    result = approve(wallet, app_client, next_request(app_client, request_id=request_id), pin=PIN2)
    assert result.state == "completed"  # the fake verified with the signing certificate
    assert fake.violations == []


def test_the_kind_picks_the_key(fake: FakeService, wallet: Wallet, app_client: ServiceClient) -> None:
    """PIN1 cannot approve a signature: it is the wrong key's PIN."""
    fake.open_request("sign", HELLO)
    with pytest.raises(WrongPin, match="wrong PIN2"):
        approve(wallet, app_client, next_request(app_client), pin="12340")
    assert wallet.load().tries.sign == 2 and wallet.load().tries.auth == 3


def test_a_wrong_code_is_never_approved(fake: FakeService, wallet: Wallet, app_client: ServiceClient) -> None:
    request_id = fake.open_request("auth", HELLO, code="7713")
    item = next_request(app_client)
    with pytest.raises(
        VerificationCodeMismatch, match="shows verification code 7713 but its hash gives 7712"
    ):
        approve(wallet, app_client, item, pin=PIN1)
    assert fake.requests[request_id].answers == []
    assert wallet.load().tries.auth == 3  # refused before the PIN was tried


def test_refuse(fake: FakeService, app_client: ServiceClient) -> None:
    request_id = fake.open_request("sign", HELLO)
    result = refuse(app_client, next_request(app_client))
    assert (result.id, result.state) == (request_id, "refused")
    assert fake.requests[request_id].answers == [{"decision": "refuse"}]
    assert json.loads(fake.calls[-1].content) == {"decision": "refuse"}


def test_a_rejected_answer_shows_the_detail(
    fake: FakeService, wallet: Wallet, app_client: ServiceClient
) -> None:
    request_id = fake.open_request("auth", HELLO)
    item = next_request(app_client)
    fake.requests[request_id].state = "expired"
    with pytest.raises(ServerError, match="^the request is expired$") as caught:
        approve(wallet, app_client, item, pin=PIN1)
    assert caught.value.status == 409


@dataclass
class FakeClock:
    t: float = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_waiting_polls_every_half_second(fake: FakeService, app_client: ServiceClient) -> None:
    clock = FakeClock()
    with pytest.raises(NothingPending, match="no pending request within 2 s"):
        next_request(app_client, wait=2, clock=Clock(now=clock.now, sleep=clock.sleep))
    assert len(fake.calls) - 2 == 5  # at 0, 0.5, 1, 1.5, 2 s (after the 2 enrolment calls)

    def arrive_later(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.t >= 11:
            fake.open_request("auth", HELLO)

    clock.t = 10
    item = next_request(app_client, wait=5, clock=Clock(now=clock.now, sleep=arrive_later))
    assert item.verification_code == "7712"


def test_no_wait_checks_once(fake: FakeService, app_client: ServiceClient) -> None:
    with pytest.raises(NothingPending, match="^no pending request$"):
        next_request(app_client)
    assert len(fake.calls) == 3


def test_a_named_request(fake: FakeService, app_client: ServiceClient) -> None:
    first = fake.open_request("auth", HELLO)
    second = fake.open_request("auth", HELLO)
    assert next_request(app_client, request_id=second).id == second
    with pytest.raises(NothingPending, match="no pending request ar-99"):
        next_request(app_client, request_id="ar-99")
    fake.requests[first].state = "completed"
    with pytest.raises(WalletError, match=f"request {first} is completed, not pending"):
        next_request(app_client, request_id=first)


def test_server_failures_are_one_line(app_client: ServiceClient) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad gateway</html>")

    client = ServiceClient("https://eid.example", transport=httpx.MockTransport(broken))
    with pytest.raises(ServerError, match="^the service answered HTTP 502$"):
        client.start_enrolment("X")

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    client = ServiceClient("https://eid.example", transport=httpx.MockTransport(unreachable))
    with pytest.raises(WalletError, match="cannot reach the service at https://eid.example"):
        client.start_enrolment("X")

    def multi_line(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"title": "App authentication failed", "status": 401})

    client = ServiceClient("https://eid.example", transport=httpx.MockTransport(multi_line))
    with pytest.raises(ServerError, match="^App authentication failed$"):
        client.start_enrolment("X")


@pytest.mark.parametrize(
    "answer",
    [
        {"requests": [{"id": "ar-1"}]},
        {"requests": "none"},
        {"request": []},
    ],
)
def test_malformed_answers_are_protocol_errors(answer: object, enrolled: Enrolled, wallet: Wallet) -> None:
    device = DeviceCredentials(device_id=enrolled.state.device_id, key=wallet.device_key())
    client = ServiceClient(
        "https://eid.example",
        device=device,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=answer)),
    )
    with pytest.raises(ProtocolError):
        client.pending_requests()
