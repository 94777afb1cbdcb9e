"""A minimal citizen app written from docs/protocol.md alone, for the server's tests.

Independent of ``wallet/`` on purpose: if both agree with the server, the document is
what they share.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field

import httpx
import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
unb64 = base64.b64decode


def spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pop(key: ec.EllipticCurvePrivateKey, purpose: str, challenge: bytes) -> bytes:
    message = b"eid-pop-v1\x00" + purpose.encode() + b"\x00" + challenge
    digest = hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
    return key.sign(message, ec.ECDSA(digest))


@dataclass
class ProtocolApp:
    base_url: str
    auth_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    sign_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )
    device_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    device_id: str = ""
    auth_certificate: bytes = b""
    sign_certificate: bytes = b""
    citizen: dict[str, str] = field(default_factory=dict)

    def enrol(self, activation_code: str) -> dict[str, object]:
        started = httpx.post(f"{self.base_url}/api/v1/enrolment", json={"activation_code": activation_code})
        started.raise_for_status()
        body = started.json()
        challenge = unb64(body["challenge"])
        keys = {"auth": self.auth_key, "sign": self.sign_key, "device": self.device_key}
        payload = {
            f"{purpose}_key": {"public_key": b64(spki(key)), "proof": b64(pop(key, purpose, challenge))}
            for purpose, key in keys.items()
        }
        done = httpx.post(f"{self.base_url}/api/v1/enrolment/{body['enrolment_id']}/complete", json=payload)
        done.raise_for_status()
        result = done.json()
        self.device_id = result["device_id"]
        self.auth_certificate = unb64(result["auth_certificate"])
        self.sign_certificate = unb64(result["sign_certificate"])
        self.citizen = result["citizen"]
        return result

    def token(self, method: str, path: str, **overrides: object) -> str:
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": self.device_id,
            "aud": self.base_url,
            "htm": method,
            "htu": self.base_url + path,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(overrides)
        return jwt.encode(
            claims, self.device_key, algorithm="ES256", headers={"typ": "eid-app+jwt", "kid": self.device_id}
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        tokenless: bool = False,
        **kwargs: object,
    ) -> httpx.Response:
        """``tokenless``: no ``Authorization`` header (an approval authenticated by its signature)."""
        auth = token if token is not None else self.token(method, path.split("?", 1)[0])
        return httpx.request(
            method,
            self.endpoint() + path,
            headers={**({} if tokenless else {"Authorization": f"EID-App {auth}"}), **(headers or {})},
            timeout=60,
            **kwargs,  # type: ignore[arg-type]
        )

    def endpoint(self) -> str:
        """Where calls are sent (tokens always name ``base_url``, the public URL)."""
        return self.base_url

    def pending(self) -> list[dict[str, object]]:
        response = self.call("GET", "/api/v1/app/requests")
        response.raise_for_status()
        return list(response.json()["requests"])

    def answer(
        self,
        request: dict[str, object],
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        certificate: bytes | None = None,
        signature: bytes | None = None,
        tokenless: bool = False,
    ) -> httpx.Response:
        kind = request["kind"]
        use_key = key or (self.auth_key if kind == "auth" else self.sign_key)
        cert = certificate or (self.auth_certificate if kind == "auth" else self.sign_certificate)
        digest = unb64(str(request["hash"]))
        algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[
            str(request["hash_algorithm"])
        ]
        sig = signature or use_key.sign(digest, ec.ECDSA(utils.Prehashed(algorithm)))
        return self.call(
            "POST",
            f"/api/v1/app/requests/{request['id']}",
            json={"decision": "approve", "certificate": b64(cert), "signature": b64(sig)},
            tokenless=tokenless,
        )

    def refuse(self, request: dict[str, object]) -> httpx.Response:
        return self.call("POST", f"/api/v1/app/requests/{request['id']}", json={"decision": "refuse"})
