"""A read-only file for pyHanko whose large reads are views of a memory map, not copies.

pyHanko's difference analysis reads every object of the signed revision, and its parser
reads a stream's payload with one ``read(length)``, keeping it: a 100 MB image would sit
in memory although validation never looks at its pixels. Here reads of 1 MiB or more
return a ``memoryview`` of an ``mmap`` of the file, which costs no memory until someone
touches the bytes (and then only the pages touched, which the kernel may drop again).
Small reads and ``readinto`` (the digest of the signed ranges) go to the file as usual.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from typing import BinaryIO

LARGE_READ = 1024 * 1024


class MappedReader:
    """The subset of a binary file pyHanko uses: read, readinto, seek, tell."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        self._view = memoryview(self._map)

    def read(self, size: int | None = -1) -> bytes | memoryview:
        if size is None or size < LARGE_READ:
            return self._file.read(-1 if size is None else size)
        start = self._file.tell()
        end = min(start + size, len(self._map))
        self._file.seek(end)
        return self._view[start:end]

    def readinto(self, buffer: bytearray | memoryview) -> int:
        return self._file.readinto(buffer)  # type: ignore[attr-defined, no-any-return]

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        # Views handed to pyHanko may outlive the validation; the map is then unmapped
        # when the last of them is garbage-collected.
        with contextlib.suppress(BufferError):
            self._view.release()
            self._map.close()


@contextlib.contextmanager
def mapped(file: BinaryIO) -> Iterator[BinaryIO]:
    """``file`` as a ``MappedReader`` (an empty file cannot be mapped: it stays as it is)."""
    file.seek(0, 2)
    if file.tell() == 0:
        file.seek(0)
        yield file
        return
    file.seek(0)
    reader = MappedReader(file)
    try:
        yield reader  # type: ignore[misc]
    finally:
        reader.close()
