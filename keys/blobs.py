"""Document storage behind a small interface: a directory by default (a shared volume
when several instances run). Documents are transient: kept until downloaded and the
retention has passed, then deleted.

Writes are atomic (temporary file, fsync, rename), names are random, and nothing outside
the store's directory can be named.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from .errors import KeyServiceError


class BlobTooLarge(KeyServiceError):
    status = 413
    public = True
    slug = "document-too-large"
    title = "Document too large"


class BlobNotFound(KeyServiceError):
    status = 404
    public = True
    slug = "document-not-found"
    title = "Document not found"


class BlobStore:
    """Files in one directory, named by random ids."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path(self, blob_id: str) -> Path:
        if not blob_id.isalnum() or len(blob_id) > 64:
            raise BlobNotFound("no such document")
        return self.directory / blob_id

    def new_id(self) -> str:
        return secrets.token_hex(16)

    async def async_write_stream(self, chunks: AsyncIterator[bytes], *, limit: int) -> tuple[str, int]:
        """Stream into a new blob; refuse (and leave nothing) past ``limit`` bytes."""
        blob_id = self.new_id()
        final = self.path(blob_id)
        temporary = final.with_name(final.name + ".part")
        size = 0
        try:
            with temporary.open("wb") as handle:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise BlobTooLarge(f"the document is larger than {limit // (1024 * 1024)} MB")
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        return blob_id, size

    def write_bytes(self, data: bytes) -> str:
        blob_id = self.new_id()
        final = self.path(blob_id)
        temporary = final.with_name(final.name + ".part")
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        return blob_id

    def exists(self, blob_id: str) -> bool:
        return self.path(blob_id).is_file()

    def delete(self, blob_id: str) -> None:
        self.path(blob_id).unlink(missing_ok=True)
