"""The output made from the source file itself, for a caller that owns the source alone.

``SignedOutput`` copies the prepared document (the upload, then the update) into a new
file and makes all of it durable: for 100 MB a copy and an ``fsync`` of 100 MB, after
the citizen has approved. When the source is a private, durable file that nobody else
reads (the upload of a single-signer session), ``async_finish(..., consume_source=True)``
turns the source itself into the output instead (``ConsumedOutput``):

1. open the source and take an exclusive ``flock`` on it (two finishers of one state
   take turns; the second finds the output the first made);
2. if its size and modification time are those the prepare step saw, it is untouched;
   else an earlier finish was interrupted (a crash mid-append, or a failure that cut
   its tail off again), and it is cut back to ``prepared.source_size``;
3. check that the source and the prepared update give the prepared digest, the one
   the citizen signs: the source's hash state is the one the prepare step kept
   (``_prefix``) when the file is untouched and this process kept it, else the source
   is hashed again. So a changed document is never signed, and the prepared update
   needs no ``fsync`` of its own (``write_prepared(sync_update=False)``): after a power
   loss it may be lost or hold zeros, and that signature must start again;
4. append the prepared update; the signature and the later revisions (DSS, document
   time stamp) are written to it as to a copy;
5. ``fsync`` it (only the tail's pages are dirty: the upload was made durable when it
   was received) and rename it to ``out``.

A finish retried after the rename finds no source and ``out`` holding this very
update, signed: it returns without signing again. No source and no such output means
the document was used up and its result lost: ``PreparedDocumentMissing``, never a
guess. A failed finish cuts the source back to its own bytes, so it stays a valid PDF
(the next finish then re-hashes it, as after a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from io import BufferedRandom
from pathlib import Path
from typing import IO

from . import _prefix
from ._streams import CHUNK_SIZE
from .errors import PreparedDocumentMissing
from .prepared import Prepared


class ConsumedOutput:
    """The source file, locked, with the prepared update appended; the same methods as
    ``SignedOutput``."""

    def __init__(
        self, stream: BufferedRandom, prepared: Prepared, out: Path, prefix: hashlib._Hash | None
    ) -> None:
        assert prepared.source_path is not None
        self.out = out
        self.prefix = prefix
        """The hash state after the source's bytes, when known (for the document time stamp)."""
        self._stream = stream
        self._source = prepared.source_path
        self._source_size = prepared.source_size
        self._syncing: asyncio.Future[None] | None = None
        self._finished = False

    @classmethod
    async def open(cls, prepared: Prepared, out: Path) -> ConsumedOutput | None:
        """The source, ready to be written to; None if an earlier finish already made
        ``out`` from it. ``PreparedDocumentMissing`` if neither is usable."""
        return await asyncio.to_thread(_open, prepared, out)

    async def stream(self) -> IO[bytes]:
        """The file (read-write), at its end."""
        return self._stream

    async def start_sync(self) -> None:
        """Start making the file durable, in a thread; nothing more is written to it."""
        if self._syncing is None:
            self._stream.flush()
            self._syncing = asyncio.ensure_future(asyncio.to_thread(os.fsync, self._stream.fileno()))

    async def commit(self) -> None:
        """Make the file durable (if ``start_sync`` has not already) and rename it to ``out``."""
        await self.start_sync()
        assert self._syncing is not None
        await asyncio.shield(self._syncing)
        _prefix.forget(self._source)
        self._source.replace(self.out)
        self._finished = True
        self._stream.close()  # and with it the lock

    async def discard(self) -> None:
        """Cut the source back to its own bytes and let it go (a later finish can use it)."""
        if self._finished:
            return
        self._finished = True
        if self._syncing is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._syncing)
        await asyncio.to_thread(_restore, self._stream, self._source_size)


def _restore(stream: BufferedRandom, size: int) -> None:
    try:
        with contextlib.suppress(OSError):  # a retry cuts it again
            stream.flush()
            os.ftruncate(stream.fileno(), size)
    finally:
        stream.close()


def _open(prepared: Prepared, out: Path) -> ConsumedOutput | None:
    source = prepared.source_path
    assert source is not None
    try:
        stream = source.open("r+b")
    except FileNotFoundError:
        _check_finished(prepared, out)
        return None
    except OSError as exc:
        raise PreparedDocumentMissing("the document to sign cannot be opened; start again") from exc
    try:
        fd = stream.fileno()
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when the stream is closed
        seen = os.fstat(fd)
        try:
            named = source.stat()
        except FileNotFoundError:
            named = None
    except BaseException:
        stream.close()
        raise
    if named is None or (named.st_dev, named.st_ino) != (seen.st_dev, seen.st_ino):
        # Another finish renamed it to ``out`` while this one waited for the lock: that
        # file is not to be touched.
        stream.close()
        _check_finished(prepared, out)
        return None
    try:
        untouched = (seen.st_size, seen.st_mtime_ns) == (prepared.source_size, prepared.source_mtime_ns)
        if not untouched and seen.st_size < prepared.source_size:
            raise PreparedDocumentMissing("the document to sign was changed; start again")
        update = prepared.prepared_path.read_bytes()
        prefix = _prefix.recall(source, seen, prepared.hash_algorithm.value) if untouched else None
        if prefix is None:
            prefix = _verified_prefix(stream, prepared)
        _check_update(prefix, prepared, update)
        if not untouched:
            os.ftruncate(fd, prepared.source_size)
        stream.seek(prepared.source_size)
        stream.write(update)
        stream.flush()
        if os.fstat(fd).st_size != prepared.document_size:
            raise PreparedDocumentMissing("the prepared document was changed; start again")
    except BaseException:
        _restore(stream, prepared.source_size)
        raise
    return ConsumedOutput(stream, prepared, out, prefix)


def _verified_prefix(stream: BufferedRandom, prepared: Prepared) -> hashlib._Hash:
    """The hash state after the source's first ``source_size`` bytes (read again: this
    process kept none for it, or the file was changed after the prepare step)."""
    digest = hashlib.new(prepared.hash_algorithm.value)
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    stream.seek(0)
    left = prepared.source_size
    while left:
        done = stream.readinto(view[: min(CHUNK_SIZE, left)])
        if not done:
            raise PreparedDocumentMissing("the document to sign was changed; start again")
        digest.update(view[:done])
        left -= done
    return digest


def _check_update(prefix: hashlib._Hash, prepared: Prepared, update: bytes) -> None:
    """The source (``prefix``, its hash state) and ``update`` give the prepared document
    digest, the one the citizen signs; else ``PreparedDocumentMissing``. The prepared
    file is not synced when it is written (``write_prepared(sync_update=False)``): after
    a power loss it may be empty or hold zeros, and this is what notices."""
    digest = prefix.copy()
    start = prepared.reserved_region_start - prepared.source_size
    end = prepared.reserved_region_end - prepared.source_size
    if len(update) != prepared.prepared_size:
        raise PreparedDocumentMissing("the prepared document was changed; start again")
    digest.update(update[:start])
    digest.update(update[end:])
    if digest.digest() != prepared.document_digest:
        raise PreparedDocumentMissing("the document or its prepared update was changed or lost; start again")


def _check_finished(prepared: Prepared, out: Path) -> None:
    """``out`` is this prepared update, signed (an earlier finish made it from the
    source); else ``PreparedDocumentMissing``."""
    start = prepared.reserved_region_start - prepared.source_size
    end = prepared.reserved_region_end - prepared.source_size
    try:
        expected = prepared.prepared_path.read_bytes()
        with out.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            stream.seek(prepared.source_size)
            found = stream.read(prepared.prepared_size)
    except OSError as exc:
        raise PreparedDocumentMissing(
            "the document was used up by an earlier finish whose signed output is missing; start again"
        ) from exc
    signed = found[start:end] != expected[start:end]
    if (
        size < prepared.document_size
        or not signed
        or (found[:start], found[end:])
        != (
            expected[:start],
            expected[end:],
        )
    ):
        raise PreparedDocumentMissing(
            "the document was used up by an earlier finish, and the output is not its signed result; "
            "start again"
        )
