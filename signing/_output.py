"""The ``.part`` file a finished signature is written to, filled while the CMS is built.

``async_finish`` starts ``SignedOutput`` first: a thread copies the prepared file next to
``out`` and starts writing it to disk, while the event loop checks the signature,
asks the TSA and validates the certificates. Nothing is visible at ``out`` until
``commit`` has made the whole file durable and renamed it; on any failure ``discard``
removes the part file once the copy thread is done, off the event loop.
The prepared file is only read, so a retry can finish it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from pathlib import Path
from typing import IO

from ._streams import BackgroundSync, copy_file


class SignedOutput:
    """A copy of ``prepared_path`` in a part file next to ``out``, being made."""

    def __init__(self, prepared_path: Path, out: Path) -> None:
        self.out = out
        self.part = out.with_name(f".{out.name}.{secrets.token_hex(8)}.part")
        self._finished = False
        self._copying = asyncio.ensure_future(asyncio.to_thread(self._copy, prepared_path))

    def _copy(self, source: Path) -> tuple[IO[bytes], BackgroundSync]:
        stream = self.part.open("w+b")
        try:
            return stream, copy_file(source, stream)
        except BaseException:
            stream.close()
            self.part.unlink(missing_ok=True)
            raise

    async def stream(self) -> IO[bytes]:
        """The part file (read-write), once the copy is complete; ``OSError`` if it failed."""
        # Shielded: if the caller is cancelled, the copy thread still ends and ``discard``
        # cleans up after it.
        stream, _sync = await asyncio.shield(self._copying)
        return stream

    async def commit(self) -> None:
        """Make the part file durable and rename it to ``out``."""
        stream, sync = await asyncio.shield(self._copying)
        stream.flush()
        await asyncio.to_thread(_durable, stream, sync)
        stream.close()
        self.part.replace(self.out)
        self._finished = True

    async def discard(self) -> None:
        """Remove the part file; returns when it is gone (so a failed ``async_finish``
        leaves nothing behind). If cancelled meanwhile, the removal still happens when
        the copy thread ends."""
        if self._finished:
            return
        self._finished = True
        try:
            stream, sync = await asyncio.shield(self._copying)
        except asyncio.CancelledError:
            self._copying.add_done_callback(self._remove_when_copied)
            raise
        except Exception:  # noqa: BLE001 - the copy failed, and ``_copy`` removed the file
            return
        # A cancelled ``to_thread`` still runs to the end, so the file goes either way.
        await asyncio.to_thread(_remove, stream, sync, self.part)

    def _remove_when_copied(self, copying: asyncio.Future[tuple[IO[bytes], BackgroundSync]]) -> None:
        if copying.cancelled() or copying.exception() is not None:
            return
        stream, sync = copying.result()
        threading.Thread(target=_remove, args=(stream, sync, self.part), daemon=True).start()


def _durable(stream: IO[bytes], sync: BackgroundSync) -> None:
    sync.wait()
    os.fsync(stream.fileno())


def _remove(stream: IO[bytes], sync: BackgroundSync, part: Path) -> None:
    with contextlib.suppress(OSError):  # the file is being removed anyway
        sync.wait()
    stream.close()
    part.unlink(missing_ok=True)
