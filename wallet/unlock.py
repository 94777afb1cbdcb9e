"""Using a PIN-protected key, and resetting its PIN with the PUK.

Both go through ``Wallet.attempt``: the try counter is written down before the PIN
(or PUK) is tried. For a token the token is found first, so a missing module or
token does not cost a try; the login itself is the try.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import pkcs11_token
from .crypto import Signer, SoftwareSigner
from .errors import PinFormatError, StoreError
from .pin import MAX_TRIES, PIN1, PIN2, PUK, SecretRule, unwrap, wrap
from .state import FileKey, Purpose, TokenKey, WalletState
from .store import Wallet

PIN_RULES: dict[Purpose, SecretRule] = {Purpose.AUTH: PIN1, Purpose.SIGN: PIN2}


def _load_private(der: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_der_private_key(der, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise StoreError("the wallet holds a key of an unsupported type")
    return key


@contextmanager
def unlocked(wallet: Wallet, purpose: Purpose, pin: str) -> Iterator[Signer]:
    """The key for ``purpose``, opened with its PIN under the three-tries rule."""
    PIN_RULES[purpose].check(pin)  # a malformed PIN cannot be right: it costs no try
    storage = wallet.load().key(purpose).storage
    if isinstance(storage, FileKey):
        wrapped = storage.pin

        def open_file_key(_: WalletState) -> bytes:
            return unwrap(wrapped, pin, purpose=purpose.value, secret_name="pin")

        yield SoftwareSigner(_load_private(wallet.attempt(purpose.counter, open_file_key)))
        return
    token = pkcs11_token.find_token(storage.module, storage.token_label)

    def open_token_key(_: WalletState) -> pkcs11.Session:
        return pkcs11_token.login(token, pin)

    session = wallet.attempt(purpose.counter, open_token_key)
    try:
        yield pkcs11_token.find_signer(session, storage.key_label)
    finally:
        pkcs11_token.close(session)


def unblock(wallet: Wallet, purpose: Purpose, *, puk: str, new_pin: str) -> None:
    """Set a new PIN for ``purpose`` with the PUK; the PIN's counter goes back to three.

    Works whether or not the PIN is blocked (a forgotten PIN is reset the same way).
    The PUK has its own three tries; a blocked PUK means enrolling again.
    """
    PIN_RULES[purpose].check(new_pin)
    storage = wallet.load().key(purpose).storage
    if isinstance(storage, FileKey):
        PUK.check(puk)
        file_key = storage

        def open_with_puk(_: WalletState) -> bytes:
            return unwrap(file_key.puk, puk, purpose=purpose.value, secret_name="puk")

        def rewrap(state: WalletState, private_der: bytes) -> WalletState:
            entry = state.key(purpose)
            if not isinstance(entry.storage, FileKey):
                raise StoreError("the wallet changed while the PUK was checked")
            pin_wrapped = wrap(
                private_der, new_pin, purpose=purpose.value, secret_name="pin", kdf=entry.storage.pin.kdf
            )
            new_entry = replace(entry, storage=replace(entry.storage, pin=pin_wrapped))
            return replace(
                state.with_key(purpose, new_entry), tries=state.tries.set(purpose.counter, MAX_TRIES)
            )

        wallet.attempt("puk", open_with_puk, on_success=rewrap)
        return
    if not puk:
        raise PinFormatError("the PUK of a token wallet is the tokens' SO PIN; it cannot be empty")
    token_key: TokenKey = storage
    token = pkcs11_token.find_token(token_key.module, token_key.token_label)

    def init_pin(_: WalletState) -> None:
        pkcs11_token.init_user_pin(token, so_pin=puk, new_pin=new_pin)

    def reset(state: WalletState, _: None) -> WalletState:
        return replace(state, tries=state.tries.set(purpose.counter, MAX_TRIES))

    wallet.attempt("puk", init_pin, on_success=reset)
