"""What ``eid-app`` prints: one function per command, as JSON-ready dicts and text.

The JSON shapes are the app's scripting interface (tests and end-to-end runs read
them), so they live here in one place rather than inside the click commands.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509

from .errors import StoreError
from .messages import AnswerResult, ApprovalRequest
from .state import FileKey, KeyEntry, Purpose, WalletState


def certificate_summary(der: bytes) -> dict[str, str]:
    """Serial (lower-case hex, as the service stores it) and validity end."""
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        raise StoreError("a certificate in the wallet is damaged") from None
    return {
        "serial": format(certificate.serial_number, "x"),
        "not_after": certificate.not_valid_after_utc.isoformat(),
    }


def _key(entry: KeyEntry, tries: int) -> dict[str, Any]:
    storage: dict[str, Any]
    if isinstance(entry.storage, FileKey):
        storage = {"type": "file"}
    else:
        storage = {"type": "pkcs11", "token_label": entry.storage.token_label, "module": entry.storage.module}
    return {
        "curve": entry.curve.value,
        **certificate_summary(entry.certificate),
        "storage": storage,
        "pin_tries_left": tries,
        "blocked": tries <= 0,
    }


def enrolment(state: WalletState, puk: str | None) -> dict[str, Any]:
    return {
        "server_url": state.server_url,
        "device_id": state.device_id,
        "citizen": state.citizen.to_json(),
        "certificates": {
            "auth": certificate_summary(state.auth.certificate),
            "sign": certificate_summary(state.sign.certificate),
        },
        "puk": puk,
    }


def enrolment_text(state: WalletState, puk: str | None) -> str:
    auth, sign = certificate_summary(state.auth.certificate), certificate_summary(state.sign.certificate)
    lines = [
        f"Enrolled {state.citizen}",
        f"Device id: {state.device_id}",
        f"Authentication certificate: serial {auth['serial']}, valid until {auth['not_after']}",
        f"Signing certificate: serial {sign['serial']}, valid until {sign['not_after']}",
    ]
    if puk is not None:
        lines.append(f"PUK: {puk}")
        lines.append("Write the PUK down now: it is shown only this once, and it unblocks your PINs.")
    else:
        lines.append("PUK: the tokens' SO PIN (not stored by the app).")
    return "\n".join(lines)


def status(state: WalletState) -> dict[str, Any]:
    return {
        "server_url": state.server_url,
        "device_id": state.device_id,
        "citizen": state.citizen.to_json(),
        "keys": {
            "auth": _key(state.auth, state.tries.auth),
            "sign": _key(state.sign, state.tries.sign),
        },
        "puk_tries_left": state.tries.puk,
        "puk_blocked": state.tries.puk <= 0,
    }


def status_text(state: WalletState) -> str:
    data = status(state)
    lines = [f"Service: {state.server_url}", f"Device id: {state.device_id}", f"Citizen: {state.citizen}"]
    for purpose in Purpose:
        key = data["keys"][purpose.value]
        name = "Authentication" if purpose is Purpose.AUTH else "Signing"
        where = (
            "wallet file" if key["storage"]["type"] == "file" else f"token {key['storage']['token_label']!r}"
        )
        blocked = "BLOCKED" if key["blocked"] else f"{key['pin_tries_left']} tries left"
        lines.append(
            f"{name} key ({key['curve']}, {where}): serial {key['serial']}, valid until {key['not_after']}; "
            f"{purpose.pin_name} {blocked}"
        )
    lines.append("PUK: BLOCKED" if data["puk_blocked"] else f"PUK: {data['puk_tries_left']} tries left")
    return "\n".join(lines)


def request(item: ApprovalRequest) -> dict[str, Any]:
    """A request as the citizen sees it; the code is the one the app computed."""
    return {
        "id": item.id,
        "kind": item.kind,
        "verification_code": item.verification_code,
        "display_text": item.display_text,
        "hash_algorithm": item.hash_algorithm,
        "expires_at": item.expires_at.isoformat(),
    }


def request_text(item: ApprovalRequest) -> str:
    kind = "Log in" if item.kind == "auth" else "Sign"
    return f"{item.id}  {kind}  verification code {item.verification_code}  {item.display_text!r}"


def answer(item: ApprovalRequest, result: AnswerResult) -> dict[str, Any]:
    return {**request(item), "state": result.state}
