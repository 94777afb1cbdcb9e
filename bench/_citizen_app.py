"""Enrolled citizens for the benchmarks: a compact citizen app written from docs/protocol.md.

Citizens are registered in process (``identity.citizens.register``, what ``eid citizen
add`` calls) and enrolled over HTTP (``POST /api/v1/enrolment``, ``/complete``), so the
device key, the authentication key and its certificate are exactly what a real app holds.
The same ideas as ``tests/identity/protocol_client.py``, kept separate so that the
benchmarks do not import the test suite.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import _harness as h
import httpx
import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from sqlalchemy import Engine
from sqlmodel import Session

_SERIALS = itertools.count(1)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _proof(key: ec.EllipticCurvePrivateKey, purpose: str, challenge: bytes) -> bytes:
    message = b"eid-pop-v1\x00" + purpose.encode() + b"\x00" + challenge
    digest = hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
    return key.sign(message, ec.ECDSA(digest))


def _new_key(curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve)


@dataclass
class CitizenApp:
    """One enrolled citizen app: its keys, device id and certificates."""

    base_url: str
    personal_code: str
    auth_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: _new_key(ec.SECP256R1()))
    sign_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: _new_key(ec.SECP384R1()))
    device_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: _new_key(ec.SECP256R1()))
    citizen_id: int = 0
    device_id: str = ""
    auth_certificate: bytes = b""

    @property
    def subject(self) -> str:
        return f"EE{self.personal_code}"

    def enrol(self, activation_code: str) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            started = http.post("/api/v1/enrolment", json={"activation_code": activation_code})
            if started.status_code != 201:
                raise h.BenchError(f"enrolment start: HTTP {started.status_code} {started.text}")
            body = started.json()
            challenge = base64.b64decode(body["challenge"])
            keys = {"auth": self.auth_key, "sign": self.sign_key, "device": self.device_key}
            payload = {
                f"{purpose}_key": {
                    "public_key": b64(_spki(key)),
                    "proof": b64(_proof(key, purpose, challenge)),
                }
                for purpose, key in keys.items()
            }
            done = http.post(f"/api/v1/enrolment/{body['enrolment_id']}/complete", json=payload)
            if done.status_code != 200:
                raise h.BenchError(f"enrolment complete: HTTP {done.status_code} {done.text}")
            result = done.json()
        self.device_id = result["device_id"]
        self.auth_certificate = base64.b64decode(result["auth_certificate"])

    def token(self, method: str, path: str, *, now: int | None = None) -> str:
        """A request token (docs/protocol.md): ES256 with the device key, 120 s, fresh jti."""
        issued = int(time.time()) if now is None else now
        claims = {
            "iss": self.device_id,
            "aud": self.base_url,
            "htm": method,
            "htu": self.base_url + path,
            "iat": issued,
            "exp": issued + 120,
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(
            claims, self.device_key, algorithm="ES256", headers={"typ": "eid-app+jwt", "kid": self.device_id}
        )

    def sign_digest(self, digest: bytes) -> bytes:
        """The approval signature: ECDSA over the SHA-256 hash taken as a digest."""
        return self.auth_key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))

    def approval_body(self, digest: bytes) -> str:
        """The JSON of an ``approve`` answer to an ``auth`` request over ``digest``."""
        return (
            '{"decision":"approve","certificate":"'
            + b64(self.auth_certificate)
            + '","signature":"'
            + b64(self.sign_digest(digest))
            + '"}'
        )


def engine(service: h.Service) -> Engine:
    from api import db

    return db.make_engine(service.settings().resolved_database_url)


@contextmanager
def database(service: h.Service) -> Iterator[Session]:
    """A session on the running service's SQLite database (WAL: the server keeps running)."""
    eng = engine(service)
    try:
        with Session(eng) as session:
            yield session
    finally:
        eng.dispose()


def fresh_code() -> str:
    """A valid Estonian personal code (born 1980-01-01) no other benchmark citizen has."""
    from identity.personal_codes import estonian_check_digit

    serial = next(_SERIALS)
    if serial > 999:
        raise h.BenchError("too many benchmark citizens")
    first_ten = f"3800101{serial:03d}"
    return first_ten + str(estonian_check_digit(first_ten))


def enrol(service: h.Service, base_url: str, count: int) -> list[CitizenApp]:
    """``count`` citizens, registered in process and enrolled over HTTP."""
    from identity import citizens

    apps = []
    for _ in range(count):
        code = fresh_code()
        with database(service) as session:
            registration = citizens.register(
                session, personal_code=code, given_name="Mari-Liis", family_name="Männik", actor="bench"
            )
            citizen_id = registration.citizen.id
            activation = registration.activation_code
        assert citizen_id is not None
        app = CitizenApp(base_url=base_url, personal_code=code, citizen_id=citizen_id)
        app.enrol(activation)
        apps.append(app)
    return apps
