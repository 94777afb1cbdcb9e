"""Request tokens: how the citizen app proves which device is calling.

Each call carries ``Authorization: EID-App <JWS>``, signed with the device key
registered at enrolment (docs/protocol.md). The algorithm is pinned to ES256; the
token is bound to the method and URL, lives at most 120 s, and its ``jti`` is accepted
once (a unique row, so two instances cannot both accept it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from keys.models import utcnow

from .errors import AppAuthenticationFailed
from .models import Citizen, Device, UsedTokenId

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


def authenticate(
    session: Session,
    authorization: str | None,
    *,
    method: str,
    url: str,
    audience: str,
    now: datetime | None = None,
) -> AppCaller:
    """Check the ``Authorization`` header of an app call; consume its ``jti``. Commits."""
    when = now or utcnow()
    if not authorization or not authorization.startswith(SCHEME + " "):
        raise AppAuthenticationFailed(f"this call needs an 'Authorization: {SCHEME} <token>' header")
    token = authorization[len(SCHEME) + 1 :].strip()
    if len(token) > MAX_TOKEN_BYTES:
        raise AppAuthenticationFailed("the request token is too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AppAuthenticationFailed("the request token is not a JWS") from None
    if (
        header.get("alg") != "ES256"
        or header.get("typ") != TOKEN_TYPE
        or not isinstance(header.get("kid"), str)
    ):
        raise AppAuthenticationFailed(f"the request token must have alg ES256, typ {TOKEN_TYPE} and a kid")
    device = session.exec(select(Device).where(Device.public_id == header["kid"])).first()
    if device is None or not device.active:
        raise AppAuthenticationFailed("unknown or disabled device")
    public_key = serialization.load_der_public_key(device.public_key)
    try:
        claims = jwt.decode(
            token,
            public_key,  # type: ignore[arg-type]
            algorithms=["ES256"],
            audience=audience.rstrip("/"),
            issuer=device.public_id,
            options={"require": ["iss", "aud", "iat", "exp", "jti", "htm", "htu"], "verify_iat": False},
            leeway=MAX_SKEW,
        )
    except jwt.PyJWTError as exc:
        raise AppAuthenticationFailed(f"the request token is not valid: {exc}") from None
    _check_binding(claims, method=method, url=url, now=when)
    _consume_jti(
        session, str(claims["jti"]), expires=datetime.fromtimestamp(claims["exp"], UTC) + MAX_SKEW, now=when
    )
    citizen = session.get(Citizen, device.citizen_id)
    assert citizen is not None
    return AppCaller(device=device, citizen=citizen)


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
    session.add(UsedTokenId(jti=jti, expires_at=expires))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AppAuthenticationFailed("this request token was already used") from None
