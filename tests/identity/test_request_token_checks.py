"""Every way a citizen app's request token can be wrong gets 401, through the real server.

The service verifies these ES256 tokens itself (identity/app_tokens.py), so each check
PyJWT made before is held here: the signature, its encoding, the registered claims.
"""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from tests.conftest import RunningServer
from tests.identity.protocol_client import ProtocolApp
from tests.identity.test_login_with_app import register

PATH = "/api/v1/app/requests"


@pytest.fixture(scope="module")
def app(server: RunningServer) -> ProtocolApp:
    _code, activation = register(server)
    enrolled = ProtocolApp(server.url)
    enrolled.enrol(activation)
    return enrolled


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _refused(app: ProtocolApp, token: str) -> str:
    response = app.call("GET", PATH, token=token)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return str(response.json()["detail"])


def test_a_good_token_is_accepted(app: ProtocolApp) -> None:
    assert app.call("GET", PATH, token=app.token("GET", PATH)).status_code == 200


def test_a_changed_payload_breaks_the_signature(app: ProtocolApp) -> None:
    header, payload, signature = app.token("GET", PATH).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["jti"] = "another-jti-value-123456"
    forged = ".".join([header, _b64(json.dumps(claims).encode()), signature])
    assert "does not verify" in _refused(app, forged)


@pytest.mark.parametrize(
    "signature",
    [
        _b64(b"\x01" * 63),  # too short for ES256
        _b64(b"\x01" * 96),  # an ES384-sized signature
        "",  # none at all
        "AAAA=",  # padding is not base64url in a JWS
        "A",  # 4n+1 characters: no byte string encodes to that
    ],
)
def test_malformed_signatures(app: ProtocolApp, signature: str) -> None:
    header, payload, _ = app.token("GET", PATH).split(".")
    _refused(app, f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("token", ["a.b", "a.b.c.d", "a b.c.d", "e30.e30.e30", "W10.e30.AAAA", "..."])
def test_not_a_compact_jws(app: ProtocolApp, token: str) -> None:
    _refused(app, token)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"iss": "dev_someone_else"}, "iss"),
        ({"aud": "https://elsewhere.example"}, "audience"),
        ({"aud": ["https://elsewhere.example"]}, "audience"),
        ({"exp": "soon"}, "numbers"),
        ({"exp": True}, "numbers"),
        ({"nbf": 2**40}, "not valid yet"),
        ({"jti": None}, "jti"),
    ],
)
def test_claims_are_checked(app: ProtocolApp, overrides: dict[str, object], message: str) -> None:
    assert message in _refused(app, app.token("GET", PATH, **overrides))


def test_every_registered_claim_is_required(app: ProtocolApp) -> None:
    for name in ("iss", "aud", "iat", "exp", "jti", "htm", "htu"):
        token = app.token("GET", PATH)
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        del claims[name]
        resigned = jwt.encode(
            claims, app.device_key, algorithm="ES256", headers={"typ": "eid-app+jwt", "kid": app.device_id}
        )
        assert name in _refused(app, resigned), name


def test_an_audience_list_naming_us_is_accepted(app: ProtocolApp) -> None:
    token = app.token("GET", PATH, aud=["https://other.example", app.base_url])
    assert app.call("GET", PATH, token=token).status_code == 200
