"""Enrolment: make the three key pairs, prove them to the service, keep the result.

Everything that can fail locally happens before the activation code is spent: PIN
rules, the wallet directory, the token logins, key generation and the (slow) PIN and
PUK wrapping. After the service answers only the wallet files are left to write.
"""

from __future__ import annotations

import secrets
from contextlib import ExitStack
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import pkcs11_token
from .client import ServiceClient
from .crypto import Curve, KeyPurpose, Signer, SoftwareSigner, prove_possession
from .errors import IncorrectSecret, ProtocolError, SecretLocked, StoreError, TokenError, WalletError
from .messages import KeyProof
from .pin import DEFAULT_KDF, PIN1, PIN2, KdfParams, generate_puk, wrap
from .state import FileKey, KeyEntry, Purpose, TokenKey, WalletState
from .store import Wallet


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenOptions:
    """Where a token wallet keeps its keys."""

    module: str
    """Path of the PKCS#11 module."""
    label: str
    """The authentication token; the signing token is ``label + "-sign"``."""
    so_pin: str | None = None
    """The tokens' SO PIN (the wallet's PUK): sets the user PINs to PIN1 and PIN2."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrolled:
    """What enrolment made."""

    state: WalletState
    """The new wallet."""
    puk: str | None
    """The PUK of a file wallet, shown once and never stored in clear; ``None`` for a
    token wallet, whose PUK is the tokens' SO PIN."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _PreparedKey:
    signer: Signer
    """Signs the proof of possession."""
    storage: FileKey | TokenKey
    """Where the key will be kept."""


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _file_key(purpose: Purpose, curve: Curve, *, pin: str, puk: str, kdf: KdfParams) -> _PreparedKey:
    key = curve.generate()
    der = _pkcs8(key)
    storage = FileKey(
        pin=wrap(der, pin, purpose=purpose.value, secret_name="pin", kdf=kdf),
        puk=wrap(der, puk, purpose=purpose.value, secret_name="puk", kdf=kdf),
    )
    return _PreparedKey(signer=SoftwareSigner(key), storage=storage)


class _Outcome:
    """Whether enrolment finished; until it has, keys made on a token are deleted again."""

    finished = False


def _discard_unless_finished(signer: pkcs11_token.TokenSigner, outcome: _Outcome) -> None:
    if not outcome.finished:
        signer.destroy()


def _token_key(
    stack: ExitStack, options: TokenOptions, purpose: Purpose, curve: Curve, *, pin: str, outcome: _Outcome
) -> _PreparedKey:
    label = options.label if purpose is Purpose.AUTH else pkcs11_token.sign_token_label(options.label)
    token = pkcs11_token.find_token(options.module, label)
    try:
        if options.so_pin is not None:
            pkcs11_token.init_user_pin(token, so_pin=options.so_pin, new_pin=pin)
    except (IncorrectSecret, SecretLocked):
        raise TokenError(f"token {label!r} did not accept the SO PIN") from None
    try:
        session = pkcs11_token.login(token, pin)
    except (IncorrectSecret, SecretLocked):
        hint = "" if options.so_pin is not None else " (pass --so-pin to set it)"
        raise TokenError(f"token {label!r} did not accept {purpose.pin_name}{hint}") from None
    stack.callback(pkcs11_token.close, session)
    key_label = f"eid-{purpose.value}-{secrets.token_hex(4)}"  # never clashes with an earlier enrolment
    signer = pkcs11_token.generate_key(session, curve=curve, label=key_label)
    stack.callback(_discard_unless_finished, signer, outcome)  # runs before the session closes
    storage = TokenKey(module=options.module, token_label=label, key_label=key_label)
    return _PreparedKey(signer=signer, storage=storage)


def _check_certificate(der: bytes, public_key_der: bytes, name: str) -> None:
    """The service must certify the key we sent, not some other one."""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        raise ProtocolError(f"the {name} certificate is not DER X.509") from None
    certified = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if certified != public_key_der:
        raise ProtocolError(f"the {name} certificate is for a different key")


def enroll(
    wallet: Wallet,
    client: ServiceClient,
    *,
    activation_code: str,
    pin1: str,
    pin2: str,
    curve: Curve = Curve.P256,
    token: TokenOptions | None = None,
    kdf: KdfParams = DEFAULT_KDF,
) -> Enrolled:
    """Enrol with ``activation_code`` and write the new wallet."""
    PIN1.check(pin1)
    PIN2.check(pin2)
    if not activation_code.strip():
        raise WalletError("the activation code is empty")
    wallet.prepare()
    device_key = Curve.P256.generate()  # the protocol fixes P-256 for the device key
    outcome = _Outcome()
    with ExitStack() as stack:
        puk: str | None
        if token is None:
            puk = generate_puk()
            auth = _file_key(Purpose.AUTH, curve, pin=pin1, puk=puk, kdf=kdf)
            sign = _file_key(Purpose.SIGN, curve, pin=pin2, puk=puk, kdf=kdf)
        else:
            puk = None
            auth = _token_key(stack, token, Purpose.AUTH, curve, pin=pin1, outcome=outcome)
            sign = _token_key(stack, token, Purpose.SIGN, curve, pin=pin2, outcome=outcome)

        start = client.start_enrolment(activation_code.strip())
        challenge = start.challenge

        def proof(purpose: KeyPurpose, signer: Signer, key_curve: Curve) -> KeyProof:
            signature = prove_possession(signer, purpose=purpose, challenge=challenge, curve=key_curve)
            return KeyProof(public_key=signer.public_key_der, proof=signature)

        result = client.complete_enrolment(
            start.enrolment_id,
            auth_key=proof("auth", auth.signer, curve),
            sign_key=proof("sign", sign.signer, curve),
            device_key=proof("device", SoftwareSigner(device_key), Curve.P256),
        )
        _check_certificate(result.auth_certificate, auth.signer.public_key_der, "authentication")
        _check_certificate(result.sign_certificate, sign.signer.public_key_der, "signing")
        state = WalletState(
            server_url=client.base_url,
            device_id=result.device_id,
            citizen=result.citizen,
            chain=result.chain,
            auth=KeyEntry(curve=curve, certificate=result.auth_certificate, storage=auth.storage),
            sign=KeyEntry(curve=curve, certificate=result.sign_certificate, storage=sign.storage),
        )
        try:
            wallet.create(state, device_key)
        except StoreError as exc:
            raise StoreError(
                f"the service enrolled this device, but the wallet could not be saved ({exc}); "
                "ask an officer for a new activation code"
            ) from None
        outcome.finished = True
    return Enrolled(state=state, puk=puk)
