"""Keys on PKCS#11 tokens: the authentication key on token ``LABEL`` (user PIN = PIN1)
and the signing key on token ``LABEL-sign`` (user PIN = PIN2).

Two tokens, because a PKCS#11 token has one user PIN and the two keys need different
PINs, as on an ID card. Both tokens must exist before enrolment (an HSM
administrator, or ``softhsm2-util --init-token``). The keys are generated on the
token: sensitive, not extractable, sign-only, so the app only ever holds handles.

The PUK of a token wallet is the tokens' SO PIN. The app never stores it. At
enrolment, ``--so-pin`` lets the app set each token's user PIN to the citizen's PIN
(``C_InitPIN`` in an SO session), which also proves the SO PIN works; without it the
tokens' user PINs must already be PIN1 and PIN2. ``unblock`` does the same
``C_InitPIN``. The app's own try counters apply as for a file wallet; the token
may also count, and ``CKR_PIN_LOCKED`` from it blocks the key in the wallet too.

PKCS#11 login state is per process and token: open at most one session per token in
a process and close it when done (``eid-app`` runs one command per process).
"""

from __future__ import annotations

import contextlib
import os

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import PKCS11Error
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from .crypto import Curve, check_digest, hash_of, raw_to_der
from .errors import IncorrectSecret, SecretLocked, TokenError

SIGN_TOKEN_SUFFIX = "-sign"

_WRONG_PIN = (pkcs11.exceptions.PinIncorrect, pkcs11.exceptions.PinLenRange, pkcs11.exceptions.PinInvalid)


def sign_token_label(label: str) -> str:
    """The token holding the signing key, next to the authentication token ``label``."""
    return label + SIGN_TOKEN_SUFFIX


def _reason(exc: BaseException) -> str:
    return type(exc).__name__


def find_token(module: str, label: str) -> pkcs11.Token:
    """Load the module and find the token; nothing is logged in yet."""
    if not os.path.isfile(module):
        raise TokenError(f"PKCS#11 module not found: {module}")
    try:
        lib = pkcs11.lib(module)
        return lib.get_token(token_label=label)
    except pkcs11.exceptions.NoSuchToken:
        raise TokenError(f"no PKCS#11 token labelled {label!r}") from None
    except pkcs11.exceptions.MultipleTokensReturned:
        raise TokenError(f"several PKCS#11 tokens are labelled {label!r}") from None
    except PKCS11Error as exc:
        raise TokenError(f"cannot use PKCS#11 module {module}: {_reason(exc)}") from None


def login(token: pkcs11.Token, pin: str) -> pkcs11.Session:
    """A read-write user session; the caller closes it (that also logs out)."""
    try:
        return token.open(rw=True, user_pin=pin)
    except _WRONG_PIN:
        raise IncorrectSecret() from None
    except pkcs11.exceptions.PinLocked:
        raise SecretLocked() from None
    except PKCS11Error as exc:
        raise TokenError(f"cannot log in to token {token.label!r}: {_reason(exc)}") from None


def init_user_pin(token: pkcs11.Token, *, so_pin: str, new_pin: str) -> None:
    """Set the user PIN with the SO PIN (C_InitPIN); a wrong SO PIN is ``IncorrectSecret``."""
    try:
        session = token.open(rw=True, so_pin=so_pin)
    except _WRONG_PIN:
        raise IncorrectSecret() from None
    except pkcs11.exceptions.PinLocked:
        raise SecretLocked() from None
    except PKCS11Error as exc:
        raise TokenError(f"cannot log in to token {token.label!r} as SO: {_reason(exc)}") from None
    try:
        session.init_pin(new_pin)
    except PKCS11Error as exc:
        raise TokenError(f"token {token.label!r} refused the new PIN: {_reason(exc)}") from None
    finally:
        close(session)


def close(session: pkcs11.Session) -> None:
    """Log out and close; a token already gone has nothing left to release."""
    with contextlib.suppress(PKCS11Error):
        session.close()


class TokenSigner:
    """A token private key, used through a logged-in session."""

    def __init__(
        self,
        session: pkcs11.Session,
        private_key: pkcs11.PrivateKey,
        public_key: pkcs11.PublicKey,
    ) -> None:
        self._session = session
        self._key = private_key
        self._public_key = public_key
        self._public = encode_ec_public_key(public_key)

    def destroy(self) -> None:
        """Delete the key pair from the token (an enrolment that did not finish)."""
        for obj in (self._key, self._public_key):
            with contextlib.suppress(PKCS11Error):
                obj.destroy()

    @property
    def public_key_der(self) -> bytes:
        return self._public

    def sign_digest(self, digest: bytes, hash_algorithm: str) -> bytes:
        """CKM_ECDSA signs the digest as given and answers ``r || s``; we send DER."""
        hash_of(hash_algorithm)
        check_digest(digest, hash_algorithm)
        try:
            # python-pkcs11's stubs put sign() on a mixin that get_key's Key lacks.
            raw: bytes = self._key.sign(digest, mechanism=Mechanism.ECDSA)  # type: ignore[attr-defined]
        except PKCS11Error as exc:
            raise TokenError(f"the token failed to sign: {_reason(exc)}") from None
        return raw_to_der(raw)


def generate_key(session: pkcs11.Session, *, curve: Curve, label: str) -> TokenSigner:
    """A new EC key pair on the token: sensitive, never extractable, sign/verify only."""
    public_template: dict[Attribute, object] = {
        Attribute.TOKEN: True,
        Attribute.EC_PARAMS: encode_named_curve_parameters(curve.oid_name),
    }
    private_template: dict[Attribute, object] = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    try:
        public, private = session.generate_keypair(
            KeyType.EC,
            id=label.encode("utf-8"),
            label=label,
            store=True,
            # Every other capability (decrypt, unwrap, derive...) is set false.
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            public_template=public_template,
            private_template=private_template,
        )
        return TokenSigner(session, private, public)
    except PKCS11Error as exc:
        raise TokenError(f"the token could not generate a key: {_reason(exc)}") from None


def find_signer(session: pkcs11.Session, label: str) -> TokenSigner:
    """The key pair labelled ``label`` on the session's token."""
    try:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=KeyType.EC, label=label)
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, key_type=KeyType.EC, label=label)
        return TokenSigner(session, private, public)  # type: ignore[arg-type]
    except pkcs11.exceptions.NoSuchKey:
        raise TokenError(f"key {label!r} is not on the token: was the token reset?") from None
    except PKCS11Error as exc:
        raise TokenError(f"cannot find key {label!r} on the token: {_reason(exc)}") from None
