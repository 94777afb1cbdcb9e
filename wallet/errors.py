"""The app's errors. Each message is written for the citizen and fits on one line.

``cli`` prints ``str(error)`` and exits with ``exit_code``; nothing else escapes a
public function of this package, so the console never shows a traceback.
"""

from __future__ import annotations


class WalletError(Exception):
    """Base of every error the app reports."""

    exit_code: int = 1
    """The process exit code ``eid-app`` uses for this error."""


class StoreError(WalletError):
    """The wallet directory is missing, unreadable, damaged or already in use."""


class PinFormatError(WalletError):
    """A PIN or PUK does not have the required form; nothing was tried or sent."""


class IncorrectSecret(WalletError):
    """A PIN or PUK did not open its key (AES-GCM tag failed, or CKR_PIN_INCORRECT).

    Raised inside a try and turned into ``WrongPin`` or ``Blocked`` by the counter
    rule in ``store``, which knows how many tries are left.
    """

    def __init__(self) -> None:
        super().__init__("wrong PIN or PUK")


class SecretLocked(WalletError):
    """The token itself reports the PIN as locked (CKR_PIN_LOCKED)."""

    def __init__(self) -> None:
        super().__init__("the token reports the PIN as locked")


class WrongPin(WalletError):
    """A wrong PIN or PUK; ``tries_left`` more are allowed before it blocks."""

    def __init__(self, name: str, tries_left: int) -> None:
        self.name = name
        self.tries_left = tries_left
        plural = "try" if tries_left == 1 else "tries"
        super().__init__(f"wrong {name}: {tries_left} {plural} left")


class Blocked(WalletError):
    """The PIN or PUK is blocked: even the right one is refused."""

    def __init__(self, name: str, remedy: str) -> None:
        self.name = name
        super().__init__(f"{name} is blocked: {remedy}")


class TokenError(WalletError):
    """The PKCS#11 module or token is missing or failed."""


class ServerError(WalletError):
    """The service answered with an error (an RFC 9457 problem document)."""

    def __init__(self, message: str, *, status: int, problem_type: str | None = None) -> None:
        self.status = status
        self.problem_type = problem_type
        super().__init__(message)


class ProtocolError(WalletError):
    """The service answered something that does not follow docs/protocol.md."""


class VerificationCodeMismatch(ProtocolError):
    """The service's verification code is not the one its hash gives: never approve."""


class NothingPending(WalletError):
    """No pending request arrived within the wait time."""

    exit_code = 3
