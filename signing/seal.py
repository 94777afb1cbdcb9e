"""Signing with a key the service holds (institutional e-seals): prepare and finish in one go.

The key never leaves the key store; ``KeyStore.sign`` hashes the DER signed attributes
with the prepared hash algorithm and signs, which is the same signature a citizen's app
makes over ``digest_to_sign``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pyhanko.sign.timestamps import TimeStamper

from keys.keystore import KeyStore

from . import _draft
from .pades import async_finish, async_prepare
from .prepared import Level
from .stamp import StampSpec
from .validation import ValidationData, ValidationSource


async def async_sign_with_keystore(
    source: Path,
    out: Path,
    *,
    workdir: Path,
    keystore: KeyStore,
    key_id: str,
    certificate: bytes,
    chain: Sequence[bytes],
    timestamper: TimeStamper | None,
    validation: ValidationData | ValidationSource,
    level: Level | str = Level.B_LTA,
    stamp: StampSpec | None = None,
    field_name: str | None = None,
    reason: str | None = None,
    location: str | None = None,
    now: datetime | None = None,
) -> Path:
    """Sign ``source`` into ``out`` with ``key_id`` from ``keystore`` (whose certificate is
    ``certificate``). The prepared file in ``workdir`` is removed afterwards."""
    prepared = await async_prepare(
        source,
        workdir,
        signer_certificate=certificate,
        chain=chain,
        level=level,
        stamp=stamp,
        field_name=field_name,
        reason=reason,
        location=location,
        now=now,
    )
    try:
        # Key stores block (an HSM round trip), so the signature is made off the event loop.
        signature = await asyncio.to_thread(
            keystore.sign, key_id, prepared.signed_attributes, hash_algorithm=prepared.hash_algorithm
        )
        return await async_finish(
            prepared, signature, out=out, timestamper=timestamper, validation=validation
        )
    finally:
        _draft.discard(prepared.prepared_path)
        prepared.prepared_path.unlink(missing_ok=True)
