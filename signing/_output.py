"""The ``.part`` file a finished signature is written to, filled while the CMS is built.

``async_finish`` starts ``SignedOutput`` first: a thread takes over the copy of the
prepared document that prepare started (``_draft``), or else copies the prepared document
(the original, then the prepared update) next to ``out`` (and, for a big file, starts
writing it to disk), while the event loop checks
the signature, asks the TSA and builds the CMS. Once the CMS is in place, ``start_sync``
makes the file durable in a thread, so the disk flush overlaps whatever is still to be
checked. Nothing is visible at ``out`` until ``commit`` has seen the whole file durable
and renamed it; on any failure ``discard`` removes the part file once the threads are
done, off the event loop. The prepared files are only read, so a retry can finish again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol

from . import _draft
from ._streams import copy_files


class _Sync(Protocol):
    def wait(self) -> None: ...


_Copy = tuple[IO[bytes], _Sync | None]


class SignedOutput:
    """A copy of the prepared document (``parts``, one after the other) in a part file
    next to ``out``, being made."""

    def __init__(self, parts: Sequence[Path], out: Path, *, draft_of: Path | None = None) -> None:
        self.out = out
        self.part = out.with_name(f".{out.name}.{secrets.token_hex(8)}.part")
        self._finished = False
        self._copying = asyncio.ensure_future(asyncio.to_thread(self._copy, parts, draft_of))
        self._syncing: asyncio.Future[None] | None = None
        self.prefix: hashlib._Hash | None = None
        """The hash state after the source's bytes, when known (for the document time stamp)."""

    def _copy(self, parts: Sequence[Path], draft_of: Path | None) -> _Copy:
        if draft_of is not None and (taken := _draft.take(draft_of, self.part)) is not None:
            return taken  # the copy that prepare started (``_draft``), already on its way to disk
        stream = self.part.open("w+b")
        try:
            return stream, copy_files(parts, stream)
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

    async def start_sync(self) -> None:
        """Start making the part file durable, in a thread; nothing more is written to it."""
        if self._syncing is None:
            stream, sync = await asyncio.shield(self._copying)
            stream.flush()
            if self._syncing is None:
                self._syncing = asyncio.ensure_future(asyncio.to_thread(_durable, stream, sync))

    async def commit(self) -> None:
        """Make the part file durable (if ``start_sync`` has not already) and rename it to ``out``."""
        await self.start_sync()
        assert self._syncing is not None
        await asyncio.shield(self._syncing)
        stream, _sync = self._copying.result()
        stream.close()
        self.part.replace(self.out)
        self._finished = True

    async def discard(self) -> None:
        """Remove the part file; returns when it is gone (so a failed ``async_finish``
        leaves nothing behind). If cancelled meanwhile, the removal still happens when
        the threads end."""
        if self._finished:
            return
        self._finished = True
        try:
            stream, sync = await asyncio.shield(self._copying)
        except asyncio.CancelledError:
            self._copying.add_done_callback(self._remove_when_done)
            raise
        except Exception:  # noqa: BLE001 - the copy failed, and ``_copy`` removed the file
            return
        if self._syncing is not None:
            try:
                await asyncio.shield(self._syncing)
            except asyncio.CancelledError:
                self._syncing.add_done_callback(lambda _done: self._remove_when_done(self._copying))
                raise
            except Exception:  # noqa: BLE001, S110 - the file is being removed anyway
                pass
        # A cancelled ``to_thread`` still runs to the end, so the file goes either way.
        await asyncio.to_thread(_remove, stream, sync, self.part)

    def _remove_when_done(self, copying: asyncio.Future[_Copy]) -> None:
        if copying.cancelled() or copying.exception() is not None:
            return
        if self._syncing is not None and not self._syncing.done():
            self._syncing.add_done_callback(lambda _done: self._remove_when_done(copying))
            return
        stream, sync = copying.result()
        threading.Thread(target=_remove, args=(stream, sync, self.part), daemon=True).start()


def _durable(stream: IO[bytes], sync: _Sync | None) -> None:
    if sync is not None:
        sync.wait()
    os.fsync(stream.fileno())


def _remove(stream: IO[bytes], sync: _Sync | None, part: Path) -> None:
    if sync is not None:
        with contextlib.suppress(OSError):  # the file is being removed anyway
            sync.wait()
    stream.close()
    part.unlink(missing_ok=True)
