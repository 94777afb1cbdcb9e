"""Client authentication at the token endpoint: secrets (basic, post) and private_key_jwt."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import RunningServer

ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return public | {"kid": "k1", "use": "sig", "alg": "ES256"}


def _assertion(key: ec.EllipticCurvePrivateKey, client_id: str, aud: str, **extra: object) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(12),
    } | extra
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})


def test_private_key_jwt(server: RunningServer, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk(key)]}))
    created = json.loads(
        server.env.run_eid(
            "client", "add", "--name", "Key client", "--scope", "admin", "--jwks", str(jwks), "--json"
        ).stdout
    )
    client_id = created["client_id"]

    def token(assertion: str) -> httpx.Response:
        return httpx.post(
            server.url + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "scope": "admin",
                "client_assertion_type": ASSERTION,
                "client_assertion": assertion,
            },
        )

    def refused(response: httpx.Response) -> bool:
        # RFC 6749 5.2: invalid_client, 401 only when the client used the Authorization header.
        return response.status_code in (400, 401) and response.json()["error"] == "invalid_client"

    good = _assertion(key, client_id, server.url)
    first = token(good)
    assert first.status_code == 200, first.text
    assert refused(token(good))  # jti single use
    assert token(_assertion(key, client_id, server.url + "/oauth/token")).status_code == 200
    assert refused(token(_assertion(key, client_id, "https://other.example")))
    other = ec.generate_private_key(ec.SECP256R1())
    assert refused(token(_assertion(other, client_id, server.url)))
    assert refused(token(_assertion(key, client_id, server.url, exp=int(time.time()) - 600)))
    # A key in the assertion's own header is not trusted.
    embedded = jwt.encode(
        {"iss": client_id, "sub": client_id, "aud": server.url, "exp": int(time.time()) + 60, "jti": "x1"},
        other,
        algorithm="ES256",
        headers={"jwk": json.loads(jwt.algorithms.ECAlgorithm.to_jwk(other.public_key()))},
    )
    assert refused(token(embedded))
    # A client registered for private_key_jwt has no secret to fall back on.
    assert created["client_secret"]
    assert (
        httpx.post(
            server.url + "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, created["client_secret"]),
        ).status_code
        == 401
    )


def test_secret_in_basic_auth_is_form_urlencoded(server: RunningServer) -> None:
    created = json.loads(
        server.env.run_eid("client", "add", "--name", "S", "--scope", "admin", "--json").stdout
    )
    # RFC 6749 2.3.1: id and secret are form-urlencoded before base64; our secrets are URL-safe,
    # so the encoded and plain forms agree, and a percent-encoded form must work too.
    encoded = httpx.post(
        server.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(created["client_id"], created["client_secret"].replace("-", "%2D")),
    )
    assert encoded.status_code == 200, encoded.text
