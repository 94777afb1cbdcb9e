"""HTTP calls to the service, and the request tokens that authenticate app calls.

Every app call but an approval carries ``Authorization: EID-App <token>``: a compact
JWS (ES256) signed by the device key, bound to the method and URL of that one call,
valid for 60 s and with a fresh ``jti`` so the service accepts it once. An approval is
authenticated by its own signature over the request's hash. The JWS is built here
with ``cryptography`` (tests check it with PyJWT, an independent reader).
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from .crypto import der_to_raw
from .errors import ProtocolError, ServerError, WalletError
from .messages import (
    AnswerResult,
    ApprovalRequest,
    EnrolmentResult,
    EnrolmentStart,
    KeyProof,
    b64,
    parse_request_list,
)

API = "/api/v1"
TOKEN_LIFETIME = 60
"""Seconds from ``iat`` to ``exp``; the protocol allows up to 120."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceCredentials:
    """What signs request tokens: the device id the service gave, and the device key."""

    device_id: str
    """As the service assigned it at enrolment; ``kid`` and ``iss`` of every token."""
    key: ec.EllipticCurvePrivateKey
    """EC P-256 private key."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def base_url(url: str) -> str:
    """The service base URL as the ``aud`` claim wants it: no trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise WalletError(f"not a service base URL: {url!r} (want e.g. https://eid.example)")
    return url.strip().rstrip("/")


def request_token(
    device: DeviceCredentials,
    *,
    audience: str,
    method: str,
    url: str,
    now: int | None = None,
    jti: str | None = None,
) -> str:
    """The compact JWS for one call of ``method`` on ``url`` (its query is dropped)."""
    issued = int(time.time()) if now is None else now
    parts = urlsplit(url)
    header = {"alg": "ES256", "typ": "eid-app+jwt", "kid": device.device_id}
    claims = {
        "iss": device.device_id,
        "aud": audience,
        "htm": method.upper(),
        "htu": f"{parts.scheme}://{parts.netloc}{parts.path}",
        "iat": issued,
        "exp": issued + TOKEN_LIFETIME,
        "jti": jti or _b64url(os.urandom(16)),
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode("utf-8")) for part in (header, claims)
    )
    der = device.key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    return f"{signing_input}.{_b64url(der_to_raw(der, 32))}"


def _problem(response: httpx.Response) -> ServerError:
    """An RFC 9457 problem document as an error; its ``detail`` is for the citizen."""
    message, problem_type = f"the service answered HTTP {response.status_code}", None
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if isinstance(problem, dict):
        text = problem.get("detail") or problem.get("title")
        if isinstance(text, str) and text.strip():
            message = " ".join(text.split())  # one line, whatever the server sent
        if isinstance(problem.get("type"), str):
            problem_type = problem["type"]
    return ServerError(message, status=response.status_code, problem_type=problem_type)


class ServiceClient:
    """The service's API as the app uses it. ``device`` is needed for app calls."""

    def __init__(
        self,
        url: str,
        *,
        device: DeviceCredentials | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.base_url = base_url(url)
        self._device = device
        self._http = httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, *, body: dict[str, Any] | None = None, app: bool = True) -> Any:
        request = self._http.build_request(method, self.base_url + path, json=body)
        if app:
            if self._device is None:
                raise WalletError("this wallet has no device key yet: enrol first")
            token = request_token(self._device, audience=self.base_url, method=method, url=str(request.url))
            request.headers["Authorization"] = f"EID-App {token}"
        try:
            response = self._http.send(request)
        except httpx.HTTPError as exc:
            raise WalletError(f"cannot reach the service at {self.base_url}: {exc}") from None
        if response.is_error:
            raise _problem(response)
        if not response.is_success:
            raise ProtocolError(f"{method} {path}: unexpected HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise ProtocolError(f"{method} {path}: the answer is not JSON") from None

    def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """An app call with a raw body or a raw answer (documents)."""
        if self._device is None:
            raise WalletError("this wallet has no device key yet: enrol first")
        request = self._http.build_request(
            method, self.base_url + path, content=content, params=params, headers=headers
        )
        if content is not None:
            request.headers["Content-Type"] = "application/pdf"
        token = request_token(
            self._device, audience=self.base_url, method=method, url=str(request.url).split("?")[0]
        )
        request.headers["Authorization"] = f"EID-App {token}"
        try:
            response = self._http.send(request)
        except httpx.HTTPError as exc:
            raise WalletError(f"cannot reach the service at {self.base_url}: {exc}") from None
        if response.is_error:
            raise _problem(response)
        return response

    def start_signing(
        self,
        document: bytes,
        *,
        name: str,
        level: str,
        reason: str | None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Upload a PDF; the service prepares it and opens a sign request.

        With ``idempotency_key`` a retry after a lost answer gets the same session."""
        params = {"name": name, "level": level}
        if reason:
            params["reason"] = reason
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        data = self._send("POST", f"{API}/signing", content=document, params=params, headers=headers).json()
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ProtocolError("the signing answer has no session id")
        return data

    def envelopes(self) -> list[dict[str, Any]]:
        """Envelopes this citizen started or must sign."""
        data = self._send("GET", f"{API}/envelopes").json()
        if not isinstance(data, list):
            raise ProtocolError("the envelope list is not a JSON array")
        return data

    def start_envelope_signature(self, envelope_id: str) -> dict[str, Any]:
        """Start this citizen's signature on an envelope; answers like ``start_signing``."""
        data = self._send("POST", f"{API}/envelopes/{quote(envelope_id, safe='')}/sign").json()
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ProtocolError("the envelope answer has no session id")
        return data

    def envelope_document(self, envelope_id: str) -> bytes:
        return self._send("GET", f"{API}/envelopes/{quote(envelope_id, safe='')}/document").content

    def signing_state(self, session_id: str, *, wait: bool = False) -> dict[str, Any]:
        data = self._send(
            "GET", f"{API}/signing/{session_id}", params={"wait": "true"} if wait else None
        ).json()
        if not isinstance(data, dict):
            raise ProtocolError("the signing state is not a JSON object")
        return data

    def signed_document(self, session_id: str) -> bytes:
        return self._send("GET", f"{API}/signing/{session_id}/document").content

    def start_enrolment(self, activation_code: str) -> EnrolmentStart:
        """Spend the activation code; the service answers with a challenge."""
        data = self._call("POST", f"{API}/enrolment", body={"activation_code": activation_code}, app=False)
        return EnrolmentStart.from_json(data)

    def complete_enrolment(
        self, enrolment_id: str, *, auth_key: KeyProof, sign_key: KeyProof, device_key: KeyProof
    ) -> EnrolmentResult:
        """Register the three keys; the service answers with the certificates."""
        body = {
            "auth_key": auth_key.to_json(),
            "sign_key": sign_key.to_json(),
            "device_key": device_key.to_json(),
        }
        data = self._call(
            "POST", f"{API}/enrolment/{quote(enrolment_id, safe='')}/complete", body=body, app=False
        )
        return EnrolmentResult.from_json(data)

    def pending_requests(self) -> list[ApprovalRequest]:
        """Pending, unexpired requests of this citizen, oldest first."""
        return parse_request_list(self._call("GET", f"{API}/app/requests"))

    def get_request(self, request_id: str) -> ApprovalRequest:
        """One request in any state."""
        return ApprovalRequest.from_json(
            self._call("GET", f"{API}/app/requests/{quote(request_id, safe='')}")
        )

    def approve(self, request_id: str, *, certificate: bytes, signature: bytes) -> AnswerResult:
        """Sent without a request token: the signature over the request's hash, made with
        a PIN-protected key, is what authenticates an approval (docs/protocol.md)."""
        body = {"decision": "approve", "certificate": b64(certificate), "signature": b64(signature)}
        return AnswerResult.from_json(
            self._call("POST", f"{API}/app/requests/{quote(request_id, safe='')}", body=body, app=False)
        )

    def refuse(self, request_id: str) -> AnswerResult:
        body = {"decision": "refuse"}
        return AnswerResult.from_json(
            self._call("POST", f"{API}/app/requests/{quote(request_id, safe='')}", body=body)
        )
