"""The request token of app calls, read back with PyJWT (an independent implementation)."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from wallet.client import DeviceCredentials, ServiceClient, base_url, request_token
from wallet.enrolment import Enrolled
from wallet.errors import WalletError

from .fake_service import FakeService

AUD = "https://eid.example"


@pytest.fixture
def device() -> DeviceCredentials:
    return DeviceCredentials(device_id="d-5b1e", key=ec.generate_private_key(ec.SECP256R1()))


def unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_every_claim(device: DeviceCredentials) -> None:
    url = "https://eid.example/api/v1/app/requests?page=2#x"
    before = int(time.time())
    token = request_token(device, audience=AUD, method="get", url=url)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "typ": "eid-app+jwt", "kid": "d-5b1e"}
    claims = jwt.decode(
        token,
        device.key.public_key(),
        algorithms=["ES256"],
        audience=AUD,
        issuer="d-5b1e",
        options={"require": ["iss", "aud", "iat", "exp", "jti"]},
    )
    assert set(claims) == {"iss", "aud", "htm", "htu", "iat", "exp", "jti"}
    assert claims["iss"] == "d-5b1e"
    assert claims["aud"] == AUD
    assert claims["htm"] == "GET"
    assert claims["htu"] == "https://eid.example/api/v1/app/requests"  # no query, no fragment
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 60
    assert len(unb64url(claims["jti"])) == 16 and "=" not in claims["jti"]


def test_signature_is_raw_r_s_not_der(device: DeviceCredentials) -> None:
    token = request_token(device, audience=AUD, method="POST", url=AUD + "/api/v1/app/requests/ar-1")
    assert len(unb64url(token.split(".")[2])) == 64  # RFC 7518 §3.4: 32-byte r || 32-byte s
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other.public_key(), algorithms=["ES256"], audience=AUD)


def test_each_token_has_a_fresh_jti(device: DeviceCredentials) -> None:
    jtis = {
        jwt.decode(
            request_token(device, audience=AUD, method="GET", url=AUD + "/x"),
            device.key.public_key(),
            algorithms=["ES256"],
            audience=AUD,
        )["jti"]
        for _ in range(20)
    }
    assert len(jtis) == 20


def test_fixed_time(device: DeviceCredentials) -> None:
    token = request_token(device, audience=AUD, method="GET", url=AUD + "/x", now=1_700_000_000, jti="abc")
    claims = jwt.decode(
        token, device.key.public_key(), algorithms=["ES256"], audience=AUD, options={"verify_exp": False}
    )
    assert (claims["iat"], claims["exp"], claims["jti"]) == (1_700_000_000, 1_700_000_060, "abc")


@pytest.mark.parametrize(
    ("given", "aud"),
    [("https://eid.example/", "https://eid.example"), ("http://127.0.0.1:8000", "http://127.0.0.1:8000")],
)
def test_audience_has_no_trailing_slash(given: str, aud: str) -> None:
    assert base_url(given) == aud


@pytest.mark.parametrize("bad", ["eid.example", "ftp://eid.example", "https://eid.example/?x=1"])
def test_bad_service_urls(bad: str) -> None:
    with pytest.raises(WalletError, match="not a service base URL"):
        base_url(bad)


def test_tokens_on_real_calls_bind_method_and_url(
    fake: FakeService, app_client: ServiceClient, enrolled: Enrolled
) -> None:
    """Protocol shape: each call's token names that call (the fake checks with PyJWT)."""
    request_id = fake.open_request("auth", b"\x01" * 32)
    app_client.pending_requests()
    app_client.get_request(request_id)
    app_client.refuse(request_id)
    assert fake.violations == []
    assert [(c["htm"], c["htu"]) for _, c in fake.tokens] == [
        ("GET", "https://eid.example/api/v1/app/requests"),
        ("GET", f"https://eid.example/api/v1/app/requests/{request_id}"),
        ("POST", f"https://eid.example/api/v1/app/requests/{request_id}"),
    ]
    assert {h["kid"] for h, _ in fake.tokens} == {enrolled.state.device_id}
