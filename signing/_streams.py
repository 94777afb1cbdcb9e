"""Files for signing without holding documents in memory or copying them in Python.

The prepared file holds only the incremental update (field, signature dictionary,
placeholder): the original stays in its own file (the uploaded blob), which
``AppendedUpdate`` shows pyHanko as the start of the document (for a stamp; an
invisible field's update is written by ``_update``). The output's copy of both is made
with the kernel (``copy_file_range``, which also shares blocks on file systems that
can), by ``_draft`` during the prepare step or else when finishing, and hashing reads
1 MiB at a time.

Every file is still made durable (``fsync``) before it is renamed into place. For a big
output the bulk is written out by a ``BackgroundSync`` started as soon as the copy is
done, so the disk writes while the CPU works, and the final ``fsync`` has only the last
few kilobytes left; a small file gets only the final one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Sequence
from io import BufferedIOBase
from pathlib import Path
from typing import IO

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest

CHUNK_SIZE = 1 << 20
"""Bytes per read when pyHanko hashes a file (its default is 4 KiB)."""
EARLY_SYNC_MIN = 8 << 20
"""Files from this size get a ``BackgroundSync`` as soon as the bulk is copied. Every
``fsync`` waits for a disk cache flush (1-5 ms on the virtual disk measured), so for a
small file one ``fsync`` at the end is cheaper than two; for a big one, writing the
bulk out while the CPU works is worth the second flush."""


def copy_stream(source: IO[bytes], target: IO[bytes]) -> int:
    """Append all of ``source`` (from its start) at ``target``'s position; the byte count.

    Both positions are left where a plain ``read``/``write`` loop would leave them:
    ``source`` at its end, ``target`` just past the copy."""
    target.flush()
    start = target.tell()
    size = os.fstat(source.fileno()).st_size if _has_fd(source) else None
    copied = 0
    if size is not None and _has_fd(target):
        try:
            while copied < size:
                done = os.copy_file_range(
                    source.fileno(), target.fileno(), size - copied, copied, start + copied
                )
                if done == 0:  # the file shrank under us; the parser will notice
                    break
                copied += done
        except OSError:
            copied = 0  # no copy_file_range here (old kernel, other file systems): copy in Python
    if copied == 0 or size is None:
        source.seek(0)
        target.seek(start)
        shutil.copyfileobj(source, target, CHUNK_SIZE)
        return target.tell() - start
    source.seek(copied)
    target.seek(start + copied)
    return copied


def _has_fd(stream: IO[bytes]) -> bool:
    try:
        stream.fileno()
    except (OSError, AttributeError, ValueError):
        return False
    return True


class StreamingPdfFileWriter(IncrementalPdfFileWriter):
    """An incremental writer that leaves the original document where it is: it writes
    only the update, to an ``AppendedUpdate`` whose offsets continue the original."""

    def _write_header(self, stream: IO[bytes]) -> None:
        stream.seek(0, os.SEEK_END)


class BackgroundSync:
    """``fsync`` of an open file in a thread, so the caller can go on writing and hashing.

    ``wait`` must be called before the file is closed; it re-raises the thread's error
    (the kernel reports a write-back error only once per file, so it must not be lost).
    The caller still makes its own final ``fsync`` for what it wrote afterwards."""

    def __init__(self, fd: int) -> None:
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(fd,), name="signing-fsync", daemon=True)
        self._thread.start()

    def _run(self, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def early_sync(stream: IO[bytes]) -> BackgroundSync | None:
    """A ``BackgroundSync`` of ``stream`` if it is big enough to be worth two ``fsync``
    calls (``EARLY_SYNC_MIN``); else None, and the final ``fsync`` does it all."""
    stream.flush()
    fd = stream.fileno()
    return BackgroundSync(fd) if os.fstat(fd).st_size >= EARLY_SYNC_MIN else None


def copy_files(sources: Sequence[Path], target: IO[bytes]) -> BackgroundSync | None:
    """Copy ``sources`` one after the other into the empty ``target`` and, if that is
    big, start writing it to disk."""
    for source in sources:
        with source.open("rb") as stream:
            copy_stream(stream, target)
    return early_sync(target)


class OriginalDigest:
    """The hash of the original document. From ``EARLY_SYNC_MIN`` up it is computed in a
    thread from the start of the prepare step (file reads and hashlib let go of the
    GIL), so the one pass over a big original runs beside pyHanko's parsing and writing
    instead of after it; a small one is hashed when ``result`` is asked for, which
    costs less than a thread on a busy machine."""

    def __init__(self, path: Path, algorithm: str, *, size: int) -> None:
        self.size = size
        self._path = path
        self._hash = hashlib.new(algorithm)
        self._read = 0
        self._error: OSError | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._ran = False
        if size >= EARLY_SYNC_MIN:
            self._thread = threading.Thread(target=self._run, name="signing-hash", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            with self._path.open("rb", buffering=0) as stream:
                buffer = bytearray(max(1, min(CHUNK_SIZE, self.size)))
                view = memoryview(buffer)
                while not self._stopped.is_set() and (done := stream.readinto(buffer)):
                    self._hash.update(view[:done])
                    self._read += done
        except OSError as exc:
            self._error = exc

    @property
    def in_background(self) -> bool:
        """Whether the hash is computed in its own thread (else by ``result``)."""
        return self._thread is not None

    def result(self) -> hashlib._Hash:
        """A copy of the hash over the whole original, to go on with (the file is
        read once, however often this is asked)."""
        if self._thread is None:
            if not self._ran:
                self._ran = True
                self._run()
        else:
            self._thread.join()
        if self._error is not None:
            raise self._error
        if self._stopped.is_set() or self._read != self.size:
            raise OSError("the document changed while it was being prepared")
        return self._hash.copy()

    def stop(self) -> None:
        """End the thread (at once if the hash is no longer needed)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()


class AppendedUpdate:
    """The prepared document as pyHanko writes it: the original, left in its own file,
    followed by the incremental update, written to ``update``.

    Offsets are those of the whole document (the update's xref and /ByteRange need
    them), but only the update is written: the original is neither copied nor synced
    again. pyHanko then reads the document back to hash the /ByteRange; its hash is not
    used (``digest`` continues ``OriginalDigest`` with the update's bytes instead), so
    the original reads as empty here and only the update is read back. When pyHanko
    seeks back to the start, nothing is left to write: the update's ``fsync`` starts
    there, in a ``BackgroundSync`` beside the hashing; ``durable`` waits for it (and
    syncs again if anything was written after all). Without ``sync`` nothing is synced
    (for a finish that checks the update against its digest, ``_consume``)."""

    def __init__(
        self, original_size: int, update: BufferedIOBase, original: OriginalDigest, *, sync: bool = True
    ) -> None:
        self.original_size = original_size
        self._syncs = sync
        self._update = update
        self._original = original
        self._position = 0
        self._update_at: int | None = 0  # where ``update`` stands, when known
        self._sync: BackgroundSync | None = None
        self._written_after = False

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._position
        elif whence == os.SEEK_END:
            self._update_at = self._update.seek(0, os.SEEK_END)
            offset += self.original_size + self._update_at
        if offset < 0:
            raise OSError("negative seek position")
        if offset == 0 and self._position > 0 and self._sync is None and self._syncs:
            self._update.flush()
            self._sync = BackgroundSync(self._update.fileno())
        self._position = offset
        return offset

    def write(self, data: bytes) -> int:
        if self._position < self.original_size:
            raise OSError("the original document is not written to")
        if self._sync is not None:
            self._written_after = True
        at = self._position - self.original_size
        if at != self._update_at:  # pyHanko writes in many small pieces: seek only if needed
            self._update.seek(at)
        written = self._update.write(data)
        self._position += written
        self._update_at = at + written
        return written

    def readinto(self, buffer: bytearray | memoryview) -> int:
        if self._position < self.original_size:
            return 0  # see the class: the original is hashed by ``OriginalDigest``
        self._update_at = None
        self._update.seek(self._position - self.original_size)
        done = self._update.readinto(buffer)
        self._position += done
        return done

    def flush(self) -> None:
        self._update.flush()

    def digest(self, placed: PreparedByteRangeDigest) -> PreparedByteRangeDigest:
        """The document digest over the /ByteRange pyHanko ``placed``: the original's
        hash, continued with the update around the /Contents placeholder."""
        self._update.flush()
        self._update_at = None
        start = placed.reserved_region_start - self.original_size
        end = placed.reserved_region_end - self.original_size
        size = self._update.seek(0, os.SEEK_END)
        if not 0 <= start < end <= size:
            raise OSError("the signature placeholder is not in the update")
        digest = self._original.result()
        buffer = bytearray(max(1, min(CHUNK_SIZE, size)))
        for begin, stop in ((0, start), (end, size)):
            self._update.seek(begin)
            while begin < stop:
                done = self._update.readinto(memoryview(buffer)[: min(len(buffer), stop - begin)])
                if not done:
                    raise OSError("the update file is shorter than written")
                digest.update(memoryview(buffer)[:done])
                begin += done
        return PreparedByteRangeDigest(
            document_digest=digest.digest(),
            reserved_region_start=placed.reserved_region_start,
            reserved_region_end=placed.reserved_region_end,
        )

    def durable(self) -> None:
        """Every byte of the update is on disk (the ``fsync`` before the rename)."""
        self._update.flush()
        if not self._syncs:
            return
        if self._sync is not None:
            self._sync.wait()
        if self._sync is None or self._written_after:
            os.fsync(self._update.fileno())

    def wait(self) -> None:
        """Let the background ``fsync`` end (before the file is closed after an error)."""
        if self._sync is not None:
            self._sync.wait()
