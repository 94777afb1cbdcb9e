"""wallet: the reference citizen app (``eid-app``), a client of docs/protocol.md.

It talks to the service over HTTP only and imports nothing from the server
packages, so it shows that an app can be written from the protocol page alone.

It holds three key pairs: the authentication key (PIN1) and the signing key (PIN2),
either wrapped in the wallet file or on PKCS#11 tokens, and the device key that signs
the request token of every app call. Module by role:

- ``cli``: the ``eid-app`` commands and their exit codes.
- ``enrolment``, ``approval``: the two exchanges of the protocol.
- ``client``, ``messages``: HTTP, request tokens, parsing the service's answers.
- ``state``, ``store``: the wallet as values and as files (atomic writes, try counters).
- ``pin``, ``unlock``, ``pkcs11_token``: keys at rest, PINs, the PUK.
- ``crypto``: proofs of possession, digest signing, verification codes.
- ``report``: what the commands print.
"""

from .client import DeviceCredentials, ServiceClient, request_token
from .crypto import Curve, pop_message, verification_code
from .enrolment import Enrolled, TokenOptions, enroll
from .errors import (
    Blocked,
    NothingPending,
    PinFormatError,
    ProtocolError,
    ServerError,
    StoreError,
    TokenError,
    VerificationCodeMismatch,
    WalletError,
    WrongPin,
)
from .state import Purpose, WalletState
from .store import Wallet

__all__ = [
    "Blocked",
    "Curve",
    "DeviceCredentials",
    "Enrolled",
    "NothingPending",
    "PinFormatError",
    "ProtocolError",
    "Purpose",
    "ServerError",
    "ServiceClient",
    "StoreError",
    "TokenError",
    "TokenOptions",
    "VerificationCodeMismatch",
    "Wallet",
    "WalletError",
    "WalletState",
    "WrongPin",
    "enroll",
    "pop_message",
    "request_token",
    "verification_code",
]
