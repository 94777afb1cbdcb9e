"""Receiving a PDF to sign or seal: streamed to the document store, hashed, checked.

Shared by the signing, envelope and seal routes. The SHA-256 of the upload is the
document hash the QR token carries and part of an ``Idempotency-Key`` fingerprint.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.requests import Request

from keys.blobs import BlobStore
from signing import check_document
from signing.errors import InvalidDocument

from .services import Services

PARSE_SECONDS = 30
"""How long pyHanko may take to open an uploaded PDF before it is refused."""


def document_store(services: Services) -> BlobStore:
    return BlobStore(services.settings.data_dir / "documents")


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    blob_id: str
    """The stored file in the document store."""
    size: int
    """Bytes received."""
    sha256: bytes
    """SHA-256 of the bytes received."""


async def receive_pdf(request: Request, services: Services, store: BlobStore) -> Upload:
    """Store the request body under the size limit and check it is a PDF we can sign.

    On any failure nothing is left in the store."""
    digest = hashlib.sha256()

    async def hashed(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            digest.update(chunk)
            yield chunk

    limit = services.settings.limits.document_bytes
    blob_id, size = await store.async_write_stream(hashed(request.stream()), limit=limit)
    try:
        try:
            await asyncio.wait_for(asyncio.to_thread(check_document, store.path(blob_id)), PARSE_SECONDS)
        except TimeoutError:
            raise InvalidDocument(f"the PDF could not be read within {PARSE_SECONDS} seconds") from None
    except BaseException:
        store.delete(blob_id)
        raise
    return Upload(blob_id=blob_id, size=size, sha256=digest.digest())
