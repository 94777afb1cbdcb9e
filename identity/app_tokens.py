"""Request tokens: how the citizen app proves which device is calling.

Each call carries ``Authorization: EID-App <JWS>``, signed with the device key
registered at enrolment (docs/protocol.md). The algorithm is pinned to ES256; the
token is bound to the method and URL, lives at most 120 s, and its ``jti`` is accepted
once (a unique row, so two instances cannot both accept it).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from sqlalchemy import bindparam, delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from keys.models import utcnow

from .errors import AppAuthenticationFailed
from .models import Citizen, Device, UsedTokenId

# Built once (bind parameters): building ORM statements per call cost more than running them.
_DEVICE_AND_CITIZEN = (
    select(Device, Citizen)
    .join(Citizen, col(Citizen.id) == col(Device.citizen_id))
    .where(col(Device.public_id) == bindparam("kid"))
)
_USED = UsedTokenId.__table__  # type: ignore[attr-defined]
_INSERT_USED = insert(_USED).values(jti=bindparam("jti"), expires_at=bindparam("expires_at"))

SCHEME = "EID-App"
TOKEN_TYPE = "eid-app+jwt"
MAX_LIFETIME = timedelta(seconds=120)
MAX_SKEW = timedelta(seconds=60)
MAX_TOKEN_BYTES = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class AppCaller:
    """An authenticated app call."""

    device: Device
    """The calling device."""
    citizen: Citizen
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
    consume: bool = True,
) -> AppCaller:
    """Check the ``Authorization`` header of an app call; consume its ``jti``. Commits.

    With ``consume=False`` the ``jti`` is not recorded yet: the caller must call
    ``use_token`` before its first write, in the same transaction, and commit that also when
    the call then fails. So the call's own change and the token's use are one transaction
    (one commit), and the database's write lock is not held while the call checks things.
    """
    when = now or utcnow()
    if not authorization or not authorization.startswith(SCHEME + " "):
        raise AppAuthenticationFailed(f"this call needs an 'Authorization: {SCHEME} <token>' header")
    token = authorization[len(SCHEME) + 1 :].strip()
    if len(token) > MAX_TOKEN_BYTES:
        raise AppAuthenticationFailed("the request token is too long")
    header = _header(token)
    if (
        header.get("alg") != "ES256"
        or header.get("typ") != TOKEN_TYPE
        or not isinstance(header.get("kid"), str)
    ):
        raise AppAuthenticationFailed(f"the request token must have alg ES256, typ {TOKEN_TYPE} and a kid")
    found = session.exec(_DEVICE_AND_CITIZEN, params={"kid": header["kid"]}).first()
    if found is None or not found[0].active:
        raise AppAuthenticationFailed("unknown or disabled device")
    device, citizen = found
    try:
        claims = jwt.decode(
            token,
            _public_key(device.public_key),
            algorithms=["ES256"],
            audience=audience.rstrip("/"),
            issuer=device.public_id,
            options={"require": ["iss", "aud", "iat", "exp", "jti", "htm", "htu"], "verify_iat": False},
            leeway=MAX_SKEW,
        )
    except jwt.PyJWTError as exc:
        raise AppAuthenticationFailed(f"the request token is not valid: {exc}") from None
    _check_binding(claims, method=method, url=url, now=when)
    caller = AppCaller(
        device=device,
        citizen=citizen,
        jti=str(claims["jti"]),
        expires=datetime.fromtimestamp(claims["exp"], UTC) + MAX_SKEW,
    )
    if consume:
        use_token(session, caller, now=when)
        session.commit()
    return caller


def use_token(session: Session, caller: AppCaller, *, now: datetime | None = None) -> None:
    """Record the ``jti`` of a call authenticated with ``consume=False``; does not commit.

    ``AppAuthenticationFailed`` (and the session rolled back) if it was used before; a
    concurrent use of the same token waits here for the first one's transaction to end.
    """
    assert caller.expires is not None
    _consume_jti(session, caller.jti, expires=caller.expires, now=now or utcnow())


@lru_cache(maxsize=4096)
def _public_key(der: bytes) -> Any:
    """The device's public key, parsed once per key (the DER is what the database holds, so a
    new or replaced key is a new cache entry; whether the device is active is read every call)."""
    return serialization.load_der_public_key(der)


def _header(token: str) -> dict[str, Any]:
    """The JWS header, only to pick the device key: ``jwt.decode`` below checks the whole
    token again with that key and the pinned algorithm. (PyJWT's own header parser validates
    every segment character by character, and would do so twice.)"""
    try:
        header = json.loads(base64.urlsafe_b64decode(token.split(".", 1)[0] + "=="))
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise AppAuthenticationFailed("the request token is not a JWS") from None
    if not isinstance(header, dict) or token.count(".") != 2:
        raise AppAuthenticationFailed("the request token is not a JWS")
    return header


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


def _consume_jti(session: Session, jti: str, *, expires: datetime, now: datetime) -> None:
    if not _last_purge or now - _last_purge[0] > _PURGE_EVERY:
        session.execute(delete(UsedTokenId).where(col(UsedTokenId.expires_at) < now))
        _last_purge[:] = [now]
    try:
        # Written at once (not left to a flush): a replay fails on the unique row right here.
        session.execute(_INSERT_USED, {"jti": jti, "expires_at": expires})
    except IntegrityError:
        session.rollback()
        raise AppAuthenticationFailed("this request token was already used") from None
