"""A fake of the service's app-facing API, for PROTOCOL-SHAPE tests only.

It checks that what the app sends has the shape docs/protocol.md gives (exact body
keys, base64, proofs of possession, request tokens, signatures over the digest) and
answers in that shape. It is not the service: no database, no real PKI, no OCSP.
Whether the app and the real server agree is for the end-to-end tests against the
real server. Independent witnesses are used where they exist: PyJWT reads the request
tokens, ``cryptography`` verifies every signature.

Anything off-shape is recorded in ``violations`` and answered with a 400 problem, so
a test sees both the app's reaction and the reason.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID

BASE_URL = "https://eid.example"
CITIZEN = {
    "country": "EE",
    "personal_code": "38001085718",
    "given_name": "Jaak-Kristjan",
    "family_name": "Jõeorg",
}
HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


class ShapeViolation(AssertionError):
    """The app sent something docs/protocol.md does not allow."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ShapeViolation(f"{what} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ShapeViolation(f"{what} is not standard padded base64") from None


def vc(hash_value: bytes) -> str:
    """The verification code, written out again from docs/protocol.md."""
    return f"{int.from_bytes(hashlib.sha256(hash_value).digest()[-2:], 'big') % 10000:04d}"


def problem(status: int, kind: str, detail: str) -> httpx.Response:
    body = {"type": f"https://eid.example/problems/{kind}", "title": kind.replace("-", " "), "status": status}
    body["detail"] = detail
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


def pop_bytes(purpose: str, challenge: bytes) -> bytes:
    return b"eid-pop-v1\x00" + purpose.encode() + b"\x00" + challenge


@dataclass
class Device:
    device_id: str
    public_key: ec.EllipticCurvePublicKey
    auth_certificate: bytes
    sign_certificate: bytes


@dataclass
class Request:
    id: str
    kind: str
    hash: bytes
    hash_algorithm: str
    display_text: str
    code: str
    state: str = "pending"
    answers: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, *, with_state: bool) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        data = {
            "id": self.id,
            "kind": self.kind,
            "verification_code": self.code,
            "display_text": self.display_text,
            "hash": b64(self.hash),
            "hash_algorithm": self.hash_algorithm,
            "created_at": now.isoformat().replace("+00:00", "Z"),
            "expires_at": (now + dt.timedelta(seconds=120)).isoformat().replace("+00:00", "Z"),
        }
        if with_state:
            data["state"] = self.state
        return data


class FakeService:
    """The fake; ``transport()`` plugs it into an ``httpx`` client."""

    def __init__(self, base_url: str = BASE_URL) -> None:
        self.base_url = base_url
        self.calls: list[httpx.Request] = []
        self.violations: list[str] = []
        self.tokens: list[tuple[dict[str, Any], dict[str, Any]]] = []
        """(header, claims) of every verified request token."""
        self.activation_codes: set[str] = set()
        self.enrolments: dict[str, bytes] = {}
        self.devices: dict[str, Device] = {}
        self.requests: dict[str, Request] = {}
        self.seen_jti: set[str] = set()
        self._ids = itertools.count(1)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fake Citizen CA")])
        now = dt.datetime.now(dt.UTC)
        self.ca_name = name
        self.ca_der = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .sign(self.ca_key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )

    # -- test controls -------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def new_activation_code(self) -> str:
        code = f"KQ7M-2R9D-{next(self._ids):04d}"
        self.activation_codes.add(code)
        return code

    def open_request(
        self,
        kind: str,
        hash_value: bytes,
        *,
        hash_algorithm: str = "sha256",
        display_text: str = "Log in to Tax and Customs Board",
        code: str | None = None,
    ) -> str:
        """Open a pending request; ``code`` overrides the true verification code."""
        request_id = f"ar-{next(self._ids)}"
        self.requests[request_id] = Request(
            id=request_id,
            kind=kind,
            hash=hash_value,
            hash_algorithm=hash_algorithm,
            display_text=display_text,
            code=vc(hash_value) if code is None else code,
        )
        return request_id

    # -- dispatch ------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        path = request.url.path
        try:
            if request.method == "POST" and path == "/api/v1/enrolment":
                return self._start(request)
            if (
                request.method == "POST"
                and path.startswith("/api/v1/enrolment/")
                and path.endswith("/complete")
            ):
                return self._complete(request, path.split("/")[4])
            if path == "/api/v1/app/requests" and request.method == "GET":
                device = self._authenticate(request)
                return httpx.Response(200, json={"requests": self._pending(device)})
            if path.startswith("/api/v1/app/requests/"):
                # An approval may come without a request token: its signature authenticates it.
                tokenless = request.method == "POST" and "authorization" not in request.headers
                device = None if tokenless else self._authenticate(request)
                item = self.requests.get(path.rsplit("/", 1)[1])
                if item is None:
                    return problem(404, "not-found", "no such request")
                if request.method == "GET":
                    return httpx.Response(200, json=item.to_json(with_state=True))
                if request.method == "POST":
                    return self._answer(request, device, item)
            return problem(404, "not-found", f"{request.method} {path}")
        except ShapeViolation as exc:
            self.violations.append(str(exc))
            return problem(400, "shape-violation", str(exc))
        except _Unauthenticated as exc:
            return problem(401, "app-authentication-failed", str(exc))

    @staticmethod
    def _body(request: httpx.Request, keys: set[str]) -> dict[str, Any]:
        if request.headers.get("content-type") != "application/json":
            raise ShapeViolation(f"content-type is {request.headers.get('content-type')!r}")
        body = json.loads(request.content.decode("utf-8"))
        if not isinstance(body, dict) or set(body) != keys:
            raise ShapeViolation(f"body keys are {sorted(body)}, want {sorted(keys)}")
        return body

    # -- enrolment -----------------------------------------------------------------

    def _start(self, request: httpx.Request) -> httpx.Response:
        if "authorization" in request.headers:
            raise ShapeViolation("enrolment calls carry no request token")
        body = self._body(request, {"activation_code"})
        if body["activation_code"] not in self.activation_codes:
            return problem(400, "activation-rejected", "The activation code is not valid.")
        self.activation_codes.discard(body["activation_code"])
        enrolment_id = f"enr-{next(self._ids)}"
        self.enrolments[enrolment_id] = os.urandom(32)
        expires = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).replace(microsecond=0)
        return httpx.Response(
            201,
            json={
                "enrolment_id": enrolment_id,
                "challenge": b64(self.enrolments[enrolment_id]),
                "expires_at": expires.isoformat().replace("+00:00", "Z"),
                "citizen": CITIZEN,
            },
        )

    def _key(
        self, body: dict[str, Any], name: str, purpose: str, challenge: bytes
    ) -> ec.EllipticCurvePublicKey:
        item = body[name]
        if not isinstance(item, dict) or set(item) != {"public_key", "proof"}:
            raise ShapeViolation(f"{name} must be {{public_key, proof}}")
        public_key = serialization.load_der_public_key(unb64(item["public_key"], f"{name}.public_key"))
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ShapeViolation(f"{name} is not an EC key")
        if purpose == "device" and public_key.curve.name != "secp256r1":
            raise ShapeViolation("the device key must be P-256")
        hash_alg = hashes.SHA256() if public_key.curve.name == "secp256r1" else hashes.SHA384()
        try:
            public_key.verify(
                unb64(item["proof"], f"{name}.proof"), pop_bytes(purpose, challenge), ec.ECDSA(hash_alg)
            )
        except InvalidSignature:
            raise ShapeViolation(f"{name}: proof of possession does not verify") from None
        return public_key

    def _certificate(self, public_key: ec.EllipticCurvePublicKey, purpose: str) -> bytes:
        now = dt.datetime.now(dt.UTC)
        usage = {name: False for name in (
            "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
            "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
        )}  # fmt: skip
        usage["digital_signature" if purpose == "auth" else "content_commitment"] = True
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, CITIZEN["country"]),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, "PNOEE-" + CITIZEN["personal_code"]),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1825))
            .add_extension(x509.KeyUsage(**usage), critical=True)
            .sign(self.ca_key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )

    def _complete(self, request: httpx.Request, enrolment_id: str) -> httpx.Response:
        if "authorization" in request.headers:
            raise ShapeViolation("enrolment calls carry no request token")
        body = self._body(request, {"auth_key", "sign_key", "device_key"})
        challenge = self.enrolments.pop(enrolment_id, None)
        if challenge is None:
            return problem(400, "enrolment-rejected", "unknown or used enrolment")
        auth = self._key(body, "auth_key", "auth", challenge)
        sign = self._key(body, "sign_key", "sign", challenge)
        device_key = self._key(body, "device_key", "device", challenge)
        spkis = {
            key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            for key in (auth, sign, device_key)
        }
        if len(spkis) != 3:
            raise ShapeViolation("the three public keys must differ")
        device = Device(
            device_id=f"d-{next(self._ids)}",
            public_key=device_key,
            auth_certificate=self._certificate(auth, "auth"),
            sign_certificate=self._certificate(sign, "sign"),
        )
        self.devices[device.device_id] = device
        return httpx.Response(
            200,
            json={
                "device_id": device.device_id,
                "auth_certificate": b64(device.auth_certificate),
                "sign_certificate": b64(device.sign_certificate),
                "chain": [b64(self.ca_der)],
                "citizen": CITIZEN,
            },
        )

    # -- app calls -----------------------------------------------------------------

    def _authenticate(self, request: httpx.Request) -> Device:
        """Check the request token exactly as docs/protocol.md describes, with PyJWT."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "EID-App" or not token:
            raise ShapeViolation("app call without 'Authorization: EID-App <token>'")
        header = jwt.get_unverified_header(token)
        if set(header) != {"alg", "typ", "kid"} or header["alg"] != "ES256" or header["typ"] != "eid-app+jwt":
            raise ShapeViolation(f"token header is {header}")
        device = self.devices.get(header["kid"])
        if device is None:
            raise _Unauthenticated("unknown device")
        try:
            claims = jwt.decode(
                token,
                device.public_key,
                algorithms=["ES256"],
                audience=self.base_url,
                issuer=device.device_id,
                options={"require": ["iss", "aud", "iat", "exp", "jti", "htm", "htu"]},
            )
        except jwt.InvalidTokenError as exc:
            raise ShapeViolation(f"token refused by PyJWT: {exc}") from None
        parts = urlsplit(str(request.url))
        if claims["htm"] != request.method:
            raise ShapeViolation(f"htm {claims['htm']} for a {request.method}")
        if claims["htu"] != f"{parts.scheme}://{parts.netloc}{parts.path}":
            raise ShapeViolation(f"htu {claims['htu']} for {request.url}")
        if not 0 < claims["exp"] - claims["iat"] <= 120 or abs(claims["iat"] - time.time()) > 60:
            raise ShapeViolation("iat/exp out of range")
        jti = claims["jti"]
        if len(base64.urlsafe_b64decode(jti + "=" * (-len(jti) % 4))) < 16:
            raise ShapeViolation("jti shorter than 128 bits")
        if jti in self.seen_jti:
            raise _Unauthenticated("jti replayed")
        self.seen_jti.add(jti)
        self.tokens.append((header, claims))
        return device

    def _pending(self, device: Device) -> list[dict[str, Any]]:
        return [item.to_json(with_state=False) for item in self.requests.values() if item.state == "pending"]

    def _answer(self, request: httpx.Request, device: Device | None, item: Request) -> httpx.Response:
        decision = json.loads(request.content).get("decision")
        if device is None:
            if decision != "approve":
                raise ShapeViolation("an answer other than an approval without a request token")
            certificate = unb64(
                self._body(request, {"decision", "certificate", "signature"})["certificate"], "certificate"
            )
            device = next(
                (d for d in self.devices.values() if certificate in (d.auth_certificate, d.sign_certificate)),
                None,
            )
            if device is None:  # nobody we know: refused, and the request stays pending
                return problem(409, "approval-rejected", "the certificate does not belong to this citizen")
        if decision == "refuse":
            self._body(request, {"decision"})
            item.answers.append({"decision": "refuse"})
            item.state = "refused"
            return httpx.Response(200, json={"id": item.id, "state": "refused"})
        body = self._body(request, {"decision", "certificate", "signature"})
        if decision != "approve":
            raise ShapeViolation(f"decision {decision!r}")
        item.answers.append(body)
        if item.state != "pending":
            return problem(409, "approval-rejected", f"the request is {item.state}")
        certificate = unb64(body["certificate"], "certificate")
        wanted = device.auth_certificate if item.kind == "auth" else device.sign_certificate
        if certificate != wanted:
            item.state = "failed"
            return problem(409, "approval-rejected", "wrong certificate for this kind of request")
        public_key = x509.load_der_x509_certificate(certificate).public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        try:
            public_key.verify(
                unb64(body["signature"], "signature"),
                item.hash,
                ec.ECDSA(utils.Prehashed(HASHES[item.hash_algorithm])),
            )
        except InvalidSignature:
            item.state = "failed"
            return problem(409, "approval-rejected", "The signature does not verify.")
        item.state = "completed"
        return httpx.Response(200, json={"id": item.id, "state": "completed"})


class _Unauthenticated(Exception):
    pass
