"""The document store: streamed writes with a limit, atomic, nothing half-written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from keys.blobs import BlobNotFound, BlobStore, BlobTooLarge


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_stream_and_limit(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    blob_id, size = asyncio.run(store.async_write_stream(_chunks(b"%PDF-", b"1.7"), limit=100))
    assert size == 8 and store.path(blob_id).read_bytes() == b"%PDF-1.7"
    with pytest.raises(BlobTooLarge):
        asyncio.run(store.async_write_stream(_chunks(b"x" * 60, b"y" * 60), limit=100))
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == [blob_id]  # nothing half-written


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "x" * 65, "a.b"])
def test_names_cannot_escape(tmp_path: Path, bad: str) -> None:
    with pytest.raises(BlobNotFound):
        BlobStore(tmp_path).path(bad)
