"""File copies for signing without holding documents in memory or copying them in Python.

pyHanko copies the original document into the prepared file 4 KiB at a time through
Python and hashes it back the same way; for a 100 MB upload that is 50 000 round trips
through the interpreter. Here the kernel copies file to file (``copy_file_range``, which
also shares blocks on file systems that can), and hashing reads 1 MiB at a time.

Every file is still made durable (``fsync``) before it is renamed into place, but the
bulk of it is written out by a ``BackgroundSync`` started as soon as the big copy is
done, so the disk writes while the CPU hashes or validates; the final ``fsync`` then
has only the last few kilobytes left to write.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

CHUNK_SIZE = 1 << 20
"""Bytes per read when pyHanko hashes a file (its default is 4 KiB)."""


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
    """An incremental writer that copies the original document with ``copy_stream``,
    then calls ``after_copy`` with the output (e.g. to start a ``BackgroundSync``)."""

    after_copy: Callable[[IO[bytes]], None] | None = None

    def _write_header(self, stream: IO[bytes]) -> None:
        position = self.input_stream.tell()
        copy_stream(self.input_stream, stream)
        self.input_stream.seek(position)
        if self.after_copy is not None:
            self.after_copy(stream)


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


def copy_file(source: Path, target: IO[bytes]) -> BackgroundSync:
    """Copy ``source`` into the empty ``target`` and start writing it to disk."""
    with source.open("rb") as stream:
        copy_stream(stream, target)
    return BackgroundSync(target.fileno())
