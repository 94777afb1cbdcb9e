"""Signing a PDF from the citizen's side: upload, approve with PIN2, download.

The service prepares the document and opens a ``sign`` request whose verification code it
returns; the app approves exactly that request (matched by id of kind ``sign`` and the
same code), waits until the service has finished the PDF, and writes it atomically.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from . import approval
from .client import ServiceClient
from .errors import WalletError
from .store import Wallet

MAX_WAIT_ROUNDS = 40


def sign_document(
    wallet: Wallet,
    client: ServiceClient,
    source: Path,
    out: Path,
    *,
    pin2: str,
    level: str,
    reason: str | None,
    wait: float = 30.0,
) -> dict[str, Any]:
    try:
        document = source.read_bytes()
    except OSError as exc:
        raise WalletError(f"cannot read {source}: {exc.strerror}") from None
    started = client.start_signing(
        document, name=source.name[:200], level=level, reason=reason, idempotency_key=str(uuid.uuid4())
    )
    signed = _approve_and_fetch(wallet, client, started, pin2=pin2, wait=wait)
    _write(out, signed)
    return {"session": started["id"], "state": "completed", "level": started.get("level"), "out": str(out)}


def sign_envelope(
    wallet: Wallet,
    client: ServiceClient,
    envelope_id: str,
    out: Path | None,
    *,
    pin2: str,
    wait: float = 30.0,
) -> dict[str, Any]:
    """Add this citizen's signature to an envelope; optionally save the new version."""
    started = client.start_envelope_signature(envelope_id)
    signed = _approve_and_fetch(wallet, client, started, pin2=pin2, wait=wait)
    if out is not None:
        _write(out, signed)
    return {"envelope": envelope_id, "session": started["id"], "state": "completed", "out": str(out or "")}


def _approve_and_fetch(
    wallet: Wallet, client: ServiceClient, started: dict[str, Any], *, pin2: str, wait: float
) -> bytes:
    request = approval.next_request(client, wait=wait)
    if request.kind != "sign" or request.verification_code != started.get("verification_code"):
        raise WalletError("the pending request is not the one for this document; nothing was signed")
    approval.approve(wallet, client, request, pin=pin2)
    state: dict[str, Any] = {}
    for _ in range(MAX_WAIT_ROUNDS):
        state = client.signing_state(started["id"], wait=True)
        if state.get("state") != "awaiting_signature" and state.get("state") != "finishing":
            break
    if state.get("state") != "completed":
        raise WalletError(
            f"the signature was not completed: {state.get('state')} {state.get('failure_reason') or ''}".strip()
        )
    return client.signed_document(started["id"])


def _write(out: Path, signed: bytes) -> None:
    temporary = out.with_name(out.name + ".part")
    temporary.write_bytes(signed)
    with temporary.open("rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, out)
