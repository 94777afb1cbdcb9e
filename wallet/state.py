"""What a wallet holds, as values, and its JSON form (``wallet.json``, format v1).

Binary values are standard base64, as in the protocol. Wrapped keys carry their own
scrypt parameters, so the cost can be raised later without breaking old wallets.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal

from .crypto import Curve
from .errors import ProtocolError, StoreError
from .messages import Citizen, b64
from .pin import MAX_TRIES, WrappedKey

FORMAT = "eid-app-wallet-v1"


Counter = Literal["auth", "sign", "puk"]
"""A try counter: one per PIN, and one for the PUK."""


class Purpose(StrEnum):
    """The two PIN-protected keys; the value is the request ``kind`` each answers."""

    AUTH = "auth"
    SIGN = "sign"

    @property
    def pin_name(self) -> str:
        return "PIN1" if self is Purpose.AUTH else "PIN2"

    @property
    def counter(self) -> Counter:
        """The try counter of this key's PIN."""
        return "auth" if self is Purpose.AUTH else "sign"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileKey:
    """A private key kept in the wallet file, wrapped twice."""

    pin: WrappedKey
    """Under the key's PIN: used for every approval."""
    puk: WrappedKey
    """Under the PUK: used only to set a new PIN."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenKey:
    """A private key on a PKCS#11 token; the token checks the PIN."""

    module: str
    """Path of the PKCS#11 module."""
    token_label: str
    """The token holding the key (user PIN = the key's PIN, SO PIN = the PUK)."""
    key_label: str
    """``CKA_LABEL`` of the key pair."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyEntry:
    """One PIN-protected key and its certificate."""

    curve: Curve
    """The key's curve (``--curve`` at enrolment)."""
    certificate: bytes
    """DER X.509 certificate from the Citizen CA."""
    storage: FileKey | TokenKey
    """In the wallet file, or on a token."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Tries:
    """Tries left before blocking; 0 means blocked."""

    auth: int = MAX_TRIES
    """PIN1."""
    sign: int = MAX_TRIES
    """PIN2."""
    puk: int = MAX_TRIES
    """The PUK (for a token wallet: the SO PIN, as tried through the app)."""

    def get(self, counter: Counter) -> int:
        value: int = getattr(self, counter)
        return value

    def set(self, counter: Counter, value: int) -> Tries:
        return replace(self, **{counter: value})


@dataclass(frozen=True, slots=True, kw_only=True)
class WalletState:
    """Everything in ``wallet.json``."""

    server_url: str
    """The service base URL, no trailing slash (the ``aud`` of request tokens)."""
    device_id: str
    """This app's id at the service."""
    citizen: Citizen
    """Whom the wallet belongs to."""
    chain: tuple[bytes, ...]
    """Citizen CA and root certificates, DER, as the service sent them."""
    auth: KeyEntry
    """The authentication key (PIN1)."""
    sign: KeyEntry
    """The signing key (PIN2)."""
    tries: Tries = Tries()
    """PIN and PUK tries left."""

    def key(self, purpose: Purpose) -> KeyEntry:
        return self.auth if purpose is Purpose.AUTH else self.sign

    def with_key(self, purpose: Purpose, entry: KeyEntry) -> WalletState:
        return replace(self, auth=entry) if purpose is Purpose.AUTH else replace(self, sign=entry)

    @property
    def uses_token(self) -> bool:
        return isinstance(self.auth.storage, TokenKey)


def _key_to_json(entry: KeyEntry) -> dict[str, Any]:
    storage: dict[str, Any]
    if isinstance(entry.storage, FileKey):
        storage = {"type": "file", "pin": entry.storage.pin.to_json(), "puk": entry.storage.puk.to_json()}
    else:
        storage = {
            "type": "pkcs11",
            "module": entry.storage.module,
            "token_label": entry.storage.token_label,
            "key_label": entry.storage.key_label,
        }
    return {"curve": entry.curve.value, "certificate": b64(entry.certificate), "storage": storage}


def _key_from_json(data: Any) -> KeyEntry:
    storage = data["storage"]
    parsed: FileKey | TokenKey
    if storage["type"] == "file":
        parsed = FileKey(pin=WrappedKey.from_json(storage["pin"]), puk=WrappedKey.from_json(storage["puk"]))
    elif storage["type"] == "pkcs11":
        parsed = TokenKey(
            module=str(storage["module"]),
            token_label=str(storage["token_label"]),
            key_label=str(storage["key_label"]),
        )
    else:
        raise StoreError(f"unknown key storage {storage['type']!r}")
    certificate = base64.b64decode(data["certificate"], validate=True)
    return KeyEntry(curve=Curve(data["curve"]), certificate=certificate, storage=parsed)


def to_json(state: WalletState) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "server_url": state.server_url,
        "device_id": state.device_id,
        "citizen": state.citizen.to_json(),
        "chain": [b64(cert) for cert in state.chain],
        "keys": {"auth": _key_to_json(state.auth), "sign": _key_to_json(state.sign)},
        "tries": {"auth": state.tries.auth, "sign": state.tries.sign, "puk": state.tries.puk},
    }


def from_json(data: Any) -> WalletState:
    try:
        if data["format"] != FORMAT:
            raise StoreError(f"unknown wallet format {data['format']!r}")
        tries = data["tries"]
        return WalletState(
            server_url=str(data["server_url"]),
            device_id=str(data["device_id"]),
            citizen=Citizen.from_json(data["citizen"]),
            chain=tuple(base64.b64decode(cert, validate=True) for cert in data["chain"]),
            auth=_key_from_json(data["keys"]["auth"]),
            sign=_key_from_json(data["keys"]["sign"]),
            tries=Tries(auth=int(tries["auth"]), sign=int(tries["sign"]), puk=int(tries["puk"])),
        )
    except (KeyError, TypeError, ValueError, ProtocolError):
        raise StoreError("the wallet file is damaged") from None
