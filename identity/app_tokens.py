"""Request tokens: how the citizen app proves which device is calling.

Each call carries ``Authorization: EID-App <JWS>``, signed with the device key
registered at enrolment (docs/protocol.md). The algorithm is pinned to ES256; the
token is bound to the method and URL, lives at most 120 s, and its ``jti`` is accepted
once (a unique row, so two instances cannot both accept it).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sqlalchemy import bindparam, delete, select, text
from sqlmodel import Session

from keys.dbapi import Prepared, Tx
from keys.models import utcnow

from .errors import AppAuthenticationFailed
from .models import Citizen, Device, UsedTokenId

_DEVICES = Device.__table__  # type: ignore[attr-defined]
_CITIZENS = Citizen.__table__  # type: ignore[attr-defined]
# Built once (bind parameters), and on the tables: building statements per call, or loading
# ORM objects, cost more than running the query.
DEVICE_AND_CITIZEN = (
    select(
        _DEVICES.c.public_key,
        _DEVICES.c.active,
        _DEVICES.c.citizen_id,
        _CITIZENS.c.public_id,
        _CITIZENS.c.state,
    )
    .join(_CITIZENS, _CITIZENS.c.id == _DEVICES.c.citizen_id)
    .where(_DEVICES.c.public_id == bindparam("kid"))
)
_USED = UsedTokenId.__table__  # type: ignore[attr-defined]
# A replay must not abort a transaction other answers share (``identity.answering``;
# PostgreSQL would), so the conflict is a row count of 0, not an error.
# On both dialects a concurrent insert of the same jti waits for the other transaction.
_INSERT_USED_ONCE = Prepared(
    text(
        "INSERT INTO used_token_id (jti, expires_at) VALUES (:jti, :expires_at) ON CONFLICT (jti) DO NOTHING"
    ).bindparams(
        bindparam("jti", type_=_USED.c.jti.type), bindparam("expires_at", type_=_USED.c.expires_at.type)
    )
)
_PURGE_USED = Prepared(delete(_USED).where(_USED.c.expires_at < bindparam("now")))

SCHEME = "EID-App"
TOKEN_TYPE = "eid-app+jwt"
MAX_LIFETIME = timedelta(seconds=120)
MAX_SKEW = timedelta(seconds=60)
MAX_TOKEN_BYTES = 4096


_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_REQUIRED_CLAIMS = ("iss", "aud", "iat", "exp", "jti", "htm", "htu")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallingDevice:
    """The device an app call came from (what the checks need, not the whole row)."""

    public_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceOwner:
    """The citizen whose device is calling (what the app's calls need)."""

    id: int
    public_id: str
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AppCaller:
    """An authenticated app call."""

    device: CallingDevice
    """The calling device."""
    citizen: DeviceOwner
    """Whose device it is."""
    jti: str = ""
    """The request token's ``jti``."""
    expires: datetime | None = None
    """Until when the ``jti`` must be remembered (the token's ``exp`` plus the clock skew)."""


def authenticate(
    session: Session,
    authorization: str | None,
    *,
    method: str,
    url: str,
    audience: str,
    now: datetime | None = None,
) -> AppCaller:
    """Check the ``Authorization`` header of an app call and use up its ``jti``. Commits.
    (The answer route checks and records in a transaction it shares with other answers:
    ``check_token`` and ``use_token_once``, ``identity.answering``.)"""
    when = now or utcnow()
    caller = check_token(
        authorization,
        lambda kid: session.execute(DEVICE_AND_CITIZEN, {"kid": kid}).first(),
        method=method,
        url=url,
        audience=audience,
        now=when,
    )
    use_token_once(Tx(session), caller, now=when)
    session.commit()
    return caller


class DeviceRow(Protocol):
    """What ``check_token`` needs of the calling device and its citizen (``DEVICE_AND_CITIZEN``)."""

    @property
    def public_key(self) -> bytes: ...
    @property
    def active(self) -> bool: ...
    @property
    def citizen_id(self) -> int: ...
    @property
    def public_id(self) -> str: ...
    @property
    def state(self) -> str: ...


def check_token(
    authorization: str | None,
    find_device: Callable[[str], DeviceRow | None],
    *,
    method: str,
    url: str,
    audience: str,
    now: datetime,
) -> AppCaller:
    """Every check of ``authenticate`` but the ``jti``'s single use; writes nothing.

    ``find_device`` reads the device (by its public id, the token's ``kid``) and its citizen
    with ``DEVICE_AND_CITIZEN``, in whatever transaction the caller runs."""
    if not authorization or not authorization.startswith(SCHEME + " "):
        raise AppAuthenticationFailed(f"this call needs an 'Authorization: {SCHEME} <token>' header")
    token = authorization[len(SCHEME) + 1 :].strip()
    if len(token) > MAX_TOKEN_BYTES:
        raise AppAuthenticationFailed("the request token is too long")
    header = _header(token)
    kid = header.get("kid")
    if header.get("alg") != "ES256" or header.get("typ") != TOKEN_TYPE or not isinstance(kid, str):
        raise AppAuthenticationFailed(f"the request token must have alg ES256, typ {TOKEN_TYPE} and a kid")
    found = find_device(kid)
    if found is None or not found.active:
        raise AppAuthenticationFailed("unknown or disabled device")
    claims = _verified_claims(token, _public_key(found.public_key))
    _check_claims(claims, issuer=kid, audience=audience.rstrip("/"), now=now)
    _check_binding(claims, method=method, url=url, now=now)
    caller = AppCaller(
        device=CallingDevice(public_id=kid),
        citizen=DeviceOwner(id=found.citizen_id, public_id=found.public_id, state=found.state),
        jti=str(claims["jti"]),
        expires=datetime.fromtimestamp(claims["exp"], UTC) + MAX_SKEW,
    )
    return caller


class _Device(NamedTuple):
    public_key: bytes
    active: bool
    citizen_id: int
    public_id: str
    state: str


_DEVICE = Prepared(DEVICE_AND_CITIZEN)


def device_reader(tx: Tx) -> Callable[[str], DeviceRow | None]:
    """``check_token``'s ``find_device`` as one prepared read on ``tx``."""

    def find(kid: str) -> DeviceRow | None:
        row = tx.one(_DEVICE, {"kid": kid})
        if row is None:
            return None
        public_key, active, citizen_id, public_id, state = row
        return _Device(bytes(public_key), bool(active), citizen_id, public_id, state)

    return find


def authenticate_in(
    tx: Tx, authorization: str | None, *, method: str, url: str, audience: str, now: datetime
) -> AppCaller:
    """``authenticate`` on a transaction it does not commit (a group's: ``api.group_commit``)."""
    caller = check_token(authorization, device_reader(tx), method=method, url=url, audience=audience, now=now)
    use_token_once(tx, caller, now=now)
    return caller


def use_token_once(tx: Tx, caller: AppCaller, *, now: datetime) -> None:
    """Record the call's ``jti``; does not commit. A replay raises
    ``AppAuthenticationFailed`` and leaves the transaction usable (it may be shared with
    other calls); a concurrent use of the same token waits for the first one's
    transaction to end, then finds the row."""
    assert caller.expires is not None
    if _purge_due(now):
        tx.count(_PURGE_USED, {"now": now})
    if tx.count(_INSERT_USED_ONCE, {"jti": caller.jti, "expires_at": caller.expires}) != 1:
        raise AppAuthenticationFailed("this request token was already used")


@lru_cache(maxsize=4096)
def _public_key(der: bytes) -> Any:
    """The device's public key, parsed once per key (the DER is what the database holds, so a
    new or replaced key is a new cache entry; whether the device is active is read every call)."""
    return serialization.load_der_public_key(der)


def _segment(text: str) -> bytes:
    """One base64url segment (no padding; the alphabet is already checked)."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:  # a length of 4n+1 characters
        raise AppAuthenticationFailed("the request token is not a JWS") from None


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise AppAuthenticationFailed("the request token is not a JWS") from None
    if not isinstance(value, dict):
        raise AppAuthenticationFailed("the request token is not a JWS")
    return value


def _header(token: str) -> dict[str, Any]:
    """The JWS header of a compact JWS: three base64url segments, nothing else."""
    if _COMPACT_JWS.fullmatch(token) is None:
        raise AppAuthenticationFailed("the request token is not a JWS")
    return _json_object(_segment(token.split(".", 1)[0]))


def _verified_claims(token: str, key: Any) -> dict[str, Any]:
    """The claims of ``token`` if its ES256 signature verifies with the device key.

    Only ES256, the one algorithm of this token type (checked in the header before), so no
    algorithm from the token is ever used: the signature is the raw r||s of 32 bytes each
    (RFC 7518 3.4) over ``header.payload``. Written out rather than left to PyJWT, whose
    character-by-character base64 checks were a tenth of an approval answer's cost.
    """
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise AppAuthenticationFailed("the device key is not a P-256 key")
    signing_input, _, signature_part = token.rpartition(".")
    signature = _segment(signature_part)
    if len(signature) != 64:
        raise AppAuthenticationFailed("the request token is not valid: its signature is not ES256")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AppAuthenticationFailed(
            "the request token is not valid: the signature does not verify"
        ) from None
    return _json_object(_segment(signing_input.partition(".")[2]))


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_claims(claims: dict[str, Any], *, issuer: str, audience: str, now: datetime) -> None:
    """Registered claims (RFC 7519 4.1): present, this device's, for us, not expired."""
    missing = [name for name in _REQUIRED_CLAIMS if name not in claims]
    if missing:
        raise AppAuthenticationFailed(f"the request token lacks the claim {missing[0]}")
    if claims["iss"] != issuer:
        raise AppAuthenticationFailed("the request token's iss is not the device that signed it")
    aud = claims["aud"]
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise AppAuthenticationFailed("the request token is for another audience")
    exp, nbf = claims["exp"], claims.get("nbf")
    if not _number(exp) or (nbf is not None and not _number(nbf)):
        raise AppAuthenticationFailed("exp and nbf must be numbers")
    skew = MAX_SKEW.total_seconds()
    if exp <= now.timestamp() - skew:
        raise AppAuthenticationFailed("the request token has expired")
    if nbf is not None and nbf > now.timestamp() + skew:
        raise AppAuthenticationFailed("the request token is not valid yet")


def _check_binding(claims: dict[str, object], *, method: str, url: str, now: datetime) -> None:
    if claims.get("htm") != method.upper():
        raise AppAuthenticationFailed("the request token was made for another HTTP method")
    if claims.get("htu") != url.split("?", 1)[0]:
        raise AppAuthenticationFailed("the request token was made for another URL")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise AppAuthenticationFailed("iat and exp must be numbers")
    issued = datetime.fromtimestamp(iat, UTC)
    if abs(issued - now) > MAX_SKEW:
        raise AppAuthenticationFailed("the request token's iat is too far from the service's clock")
    if datetime.fromtimestamp(exp, UTC) - issued > MAX_LIFETIME:
        raise AppAuthenticationFailed("the request token lives longer than 120 seconds")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 16 <= len(jti) <= 128:
        raise AppAuthenticationFailed("jti must be a random string of 16-128 characters")


_PURGE_EVERY = timedelta(seconds=60)
_last_purge: list[datetime] = []  # per process: only decides how often to tidy, never what is valid


def _purge_due(now: datetime) -> bool:
    """True at most once per ``_PURGE_EVERY`` in this process: time to delete expired jtis."""
    if _last_purge and now - _last_purge[0] <= _PURGE_EVERY:
        return False
    _last_purge[:] = [now]
    return True
