"""The service's answers, parsed strictly into values (docs/protocol.md).

A field missing or of the wrong type is a ``ProtocolError`` with the field's name:
an app that guesses at a malformed answer might approve the wrong thing.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from .crypto import verification_code
from .errors import ProtocolError

RequestKind = Literal["auth", "sign"]


def b64(data: bytes) -> str:
    """Standard base64 with padding, as every binary value in the protocol."""
    return base64.b64encode(data).decode("ascii")


def _field(data: Any, name: str, kind: type, where: str) -> Any:
    if not isinstance(data, dict) or name not in data:
        raise ProtocolError(f"{where}: the service's answer has no {name!r}")
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProtocolError(f"{where}: {name!r} has the wrong type")
    return value


def _text(data: Any, name: str, where: str) -> str:
    value: str = _field(data, name, str, where)
    return value


def _binary(data: Any, name: str, where: str) -> bytes:
    try:
        return base64.b64decode(_text(data, name, where), validate=True)
    except binascii.Error:
        raise ProtocolError(f"{where}: {name!r} is not base64") from None


def _time(data: Any, name: str, where: str) -> datetime:
    text = _text(data, name, where)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ProtocolError(f"{where}: {name!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise ProtocolError(f"{where}: {name!r} has no time zone")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Citizen:
    """Whom the service enrolled."""

    country: str
    """ISO 3166 code of the issuing country."""
    personal_code: str
    """National identification number."""
    given_name: str
    """Given name(s), UTF-8."""
    family_name: str
    """Family name, UTF-8."""

    @classmethod
    def from_json(cls, data: Any, where: str = "citizen") -> Citizen:
        return cls(
            **{
                name: _text(data, name, where)
                for name in ("country", "personal_code", "given_name", "family_name")
            }
        )

    def to_json(self) -> dict[str, str]:
        return {
            "country": self.country,
            "personal_code": self.personal_code,
            "given_name": self.given_name,
            "family_name": self.family_name,
        }

    def __str__(self) -> str:
        return f"{self.given_name} {self.family_name} ({self.country}, {self.personal_code})"


@dataclass(frozen=True, slots=True, kw_only=True)
class EnrolmentStart:
    """The answer to ``POST /api/v1/enrolment``."""

    enrolment_id: str
    """Names the enrolment in the ``complete`` URL."""
    challenge: bytes
    """Raw bytes every proof of possession signs."""
    expires_at: datetime
    """When ``complete`` stops being accepted."""
    citizen: Citizen
    """Whom the activation code was issued to."""

    @classmethod
    def from_json(cls, data: Any) -> EnrolmentStart:
        where = "enrolment"
        return cls(
            enrolment_id=_text(data, "enrolment_id", where),
            challenge=_binary(data, "challenge", where),
            expires_at=_time(data, "expires_at", where),
            citizen=Citizen.from_json(_field(data, "citizen", dict, where)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyProof:
    """One public key and its proof of possession, for the enrolment's ``complete``."""

    public_key: bytes
    """DER SubjectPublicKeyInfo."""
    proof: bytes
    """DER ECDSA signature over the proof-of-possession message."""

    def to_json(self) -> dict[str, str]:
        return {"public_key": b64(self.public_key), "proof": b64(self.proof)}


@dataclass(frozen=True, slots=True, kw_only=True)
class EnrolmentResult:
    """The answer to ``POST /api/v1/enrolment/{id}/complete``."""

    device_id: str
    """This app's id: ``kid`` and ``iss`` of its request tokens."""
    auth_certificate: bytes
    """DER X.509 certificate for the authentication key."""
    sign_certificate: bytes
    """DER X.509 certificate for the signing key."""
    chain: tuple[bytes, ...]
    """Citizen CA, then root, DER."""
    citizen: Citizen
    """Whom the certificates name."""

    @classmethod
    def from_json(cls, data: Any) -> EnrolmentResult:
        where = "enrolment result"
        chain = _field(data, "chain", list, where)
        if not all(isinstance(item, str) for item in chain):
            raise ProtocolError(f"{where}: 'chain' must be a list of base64 certificates")
        return cls(
            device_id=_text(data, "device_id", where),
            auth_certificate=_binary(data, "auth_certificate", where),
            sign_certificate=_binary(data, "sign_certificate", where),
            chain=tuple(_binary({"c": item}, "c", where + " chain") for item in chain),
            citizen=Citizen.from_json(_field(data, "citizen", dict, where)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRequest:
    """A login or signature waiting for the citizen's answer."""

    id: str
    """Names the request in the answer URL."""
    kind: RequestKind
    """``auth`` (answered with the PIN1 key) or ``sign`` (the PIN2 key)."""
    server_code: str
    """The verification code as the service sent it."""
    display_text: str
    """What the citizen is asked to approve, as the service words it."""
    hash: bytes
    """The digest to sign, as is."""
    hash_algorithm: str
    """``sha256``, ``sha384`` or ``sha512``: what ``hash`` is a digest of."""
    created_at: datetime
    """When the service opened it."""
    expires_at: datetime
    """After this the service refuses answers."""
    state: str
    """``pending``, or a final state when fetched by id."""

    @property
    def verification_code(self) -> str:
        """The code recomputed from ``hash``: the one the citizen is shown."""
        return verification_code(self.hash)

    @property
    def code_matches(self) -> bool:
        """False means the service (or someone between) is lying about what is signed."""
        return self.server_code == self.verification_code

    @classmethod
    def from_json(cls, data: Any) -> ApprovalRequest:
        where = "approval request"
        kind = _text(data, "kind", where)
        if kind not in ("auth", "sign"):
            raise ProtocolError(f"{where}: unknown kind {kind!r}")
        state = data.get("state", "pending") if isinstance(data, dict) else "pending"
        if not isinstance(state, str):
            raise ProtocolError(f"{where}: 'state' has the wrong type")
        return cls(
            id=_text(data, "id", where),
            kind=kind,  # type: ignore[arg-type]  # checked above
            server_code=_text(data, "verification_code", where),
            display_text=_text(data, "display_text", where),
            hash=_binary(data, "hash", where),
            hash_algorithm=_text(data, "hash_algorithm", where),
            created_at=_time(data, "created_at", where),
            expires_at=_time(data, "expires_at", where),
            state=state,
        )


def parse_request_list(data: Any) -> list[ApprovalRequest]:
    """The answer to ``GET /api/v1/app/requests``."""
    items = _field(data, "requests", list, "request list")
    return [ApprovalRequest.from_json(item) for item in items]


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerResult:
    """The answer to ``POST /api/v1/app/requests/{id}``."""

    id: str
    """The request answered."""
    state: str
    """``completed`` or ``refused``."""

    @classmethod
    def from_json(cls, data: Any) -> AnswerResult:
        return cls(id=_text(data, "id", "answer"), state=_text(data, "state", "answer"))
