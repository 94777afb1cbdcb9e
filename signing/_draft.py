"""The copy of the prepared document for the output, started while the citizen approves.

Finishing used to begin by copying the prepared document (the upload, then the update)
into the output's part file and making it durable: for 100 MB about 40 ms of copy and
150-250 ms of ``fsync`` on the disks measured, all after the approval, where the
citizen waits. ``Draft`` now makes that copy (a *draft*, next to the prepared file) in a
thread during the prepare step (a big upload from the start, the update once it is
durable) and syncs it; ``take`` hands it to ``SignedOutput`` as its part file (a
rename), so the finish has only the signature and a small ``fsync`` of its own left.

A draft is used only by the process that wrote it: the entry in this module's registry
(memory) is the proof that the draft's bytes are the prepared document and that no crash
came in between; the draft stays open until taken, so the file renamed into the output
is checked to be that very inode. A finish that finds no draft (another instance, a
restart, a second finish of the same state, a draft given up) copies as before, so
nothing depends on it, and the durable-before-rename rule is the same either way.

Drafts cost disk space and writes for signatures that are never approved, so they are
bounded: at most ``MAX_DRAFTS`` and ``MAX_BYTES`` at a time, removed when taken, when
finishing is no longer likely (``LIFETIME``, past an approval's two minutes) and, for
the files a crashed process left, by a scan of the directory for old ``.draft`` files at
most once per ``LIFETIME``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ._streams import copy_stream

LIFETIME = 5 * 60.0
"""Seconds a draft is kept for its finish (an approval expires after two minutes)."""
MAX_DRAFTS = 64
"""Drafts kept at once; past that a prepare keeps none (its finish copies)."""
MAX_BYTES = 2 << 30
"""Bytes of drafts kept at once, likewise."""
SUFFIX = ".draft"

_lock = threading.Lock()
_drafts: dict[str, _Draft] = {}
_scanned: dict[str, float] = {}


@dataclass(eq=False, kw_only=True)
class _Draft:
    path: Path
    size: int
    """The whole prepared document's size."""
    created: float = field(default_factory=time.monotonic)
    copied: threading.Event = field(default_factory=threading.Event)
    synced: threading.Event = field(default_factory=threading.Event)
    stream: IO[bytes] | None = None
    """Open from creation until taken or given up: while it is open, the inode cannot be
    freed and reused, so a file put in the draft's place is never taken for it."""
    error: OSError | None = None

    def wait(self) -> None:
        """Until the draft is on disk; re-raises the thread's error (a write-back error is
        reported once per file, so it must not be lost)."""
        self.synced.wait()
        if self.error is not None:
            raise self.error


class Draft:
    """A draft being written: the upload is copied from the start of the prepare step,
    and the update is added when ``complete`` names it."""

    def __init__(self, source: Path, directory: Path, *, source_size: int) -> None:
        self.state = _Draft(path=directory / f".{secrets.token_hex(16)}{SUFFIX}", size=source_size)
        self._source, self._source_size = source, source_size
        self._update: Path | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._write, name="signing-draft", daemon=True).start()

    def complete(self, update: Path, *, size: int) -> None:
        """The update is written (``size``: source and update): add it, and keep the
        draft for the finish of ``update``."""
        with _lock:
            if len(_drafts) >= MAX_DRAFTS:
                _expire_locked(time.monotonic())
            if len(_drafts) < MAX_DRAFTS and sum(d.size for d in _drafts.values()) + size <= MAX_BYTES:
                self._update = update
                self.state.size = size
                _drafts[str(update)] = self.state
        self._ready.set()

    def abandon(self) -> None:
        """No draft after all (the prepare step failed): returns when it is gone. A
        no-op after ``complete``."""
        if not self._ready.is_set():
            self._ready.set()
            self.state.synced.wait()

    def _write(self) -> None:
        draft = self.state
        try:
            stream = draft.stream = draft.path.open("x+b")
            try:
                with self._source.open("rb") as piece:
                    if copy_stream(piece, stream) != self._source_size:
                        raise OSError("the document changed while the draft was written")
                # No ``fsync`` before the update is durable: on ext4 (data=ordered) the
                # update's ``fsync`` would wait for every block of the draft.
                self._ready.wait()
                if self._update is None:
                    raise _Abandoned
                with self._update.open("rb") as piece:
                    copy_stream(piece, stream)
                stream.flush()
                if os.fstat(stream.fileno()).st_size != draft.size:
                    raise OSError("the update changed while the draft was written")
            finally:
                draft.copied.set()
            os.fsync(stream.fileno())
        except (OSError, _Abandoned) as exc:
            draft.error = exc if isinstance(exc, OSError) else OSError("no draft")
            _close(draft, draft.path)
        finally:
            draft.copied.set()
            draft.synced.set()
        _scan(draft.path.parent)


class _Abandoned(Exception):
    pass


def take(update: Path, part: Path) -> tuple[IO[bytes], _Draft] | None:
    """The draft of the prepared document that ends with ``update``, renamed to ``part``
    and open for writing at its end, with the draft (``wait`` before the final
    ``fsync``); None if there is none to use. Blocks until the copy is done."""
    with _lock:
        draft = _drafts.pop(str(update), None)
    if draft is None:
        return None
    draft.copied.wait()
    stream = draft.stream
    if stream is None or draft.error is not None or time.monotonic() - draft.created > LIFETIME:
        _discard(draft)
        return None
    try:
        draft.path.rename(part)
    except OSError:  # gone (a scan of another instance), or another file system
        _discard(draft)
        return None
    try:
        named, ours = part.stat(), os.fstat(stream.fileno())
    except OSError:
        _discard(draft, part)
        return None
    if (named.st_dev, named.st_ino) != (ours.st_dev, ours.st_ino) or ours.st_size != draft.size:
        _discard(draft, part)  # something else was put in its place: not ours to keep either
        return None
    stream.seek(0, os.SEEK_END)
    return stream, draft


def discard(update: Path, *, wait: bool = False) -> None:
    """Give up the draft for ``update``, if there is one (its prepared file is going);
    with ``wait``, return when it is gone."""
    with _lock:
        draft = _drafts.pop(str(update), None)
    if draft is not None and wait:
        _discard(draft)
    elif draft is not None:
        threading.Thread(target=_discard, args=(draft,), daemon=True).start()


def _discard(draft: _Draft, path: Path | None = None) -> None:
    draft.synced.wait()
    _close(draft, path or draft.path)


def _close(draft: _Draft, path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    if draft.stream is not None:
        with contextlib.suppress(OSError):
            draft.stream.close()


def _expire_locked(now: float) -> None:
    for key, draft in list(_drafts.items()):
        if now - draft.created > LIFETIME and draft.synced.is_set():
            del _drafts[key]
            _close(draft, draft.path)


def _scan(directory: Path) -> None:
    """Remove drafts older than ``LIFETIME`` from ``directory``, at most once per
    ``LIFETIME``: those this process gave up, and those a crashed one left."""
    now = time.monotonic()
    with _lock:
        _expire_locked(now)
        last = _scanned.get(str(directory))
        if last is not None and now - last < LIFETIME:
            return
        _scanned[str(directory)] = now
        if len(_scanned) > MAX_DRAFTS:
            _scanned.clear()
        known = {str(draft.path) for draft in _drafts.values()}
    cutoff = time.time() - LIFETIME
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if not entry.name.endswith(SUFFIX) or entry.path in known:
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)


@atexit.register
def _forget_all() -> None:
    """At exit no draft can be taken any more: close and remove them all."""
    with _lock:
        drafts = list(_drafts.values())
        _drafts.clear()
    for draft in drafts:
        if draft.synced.wait(timeout=5):
            _close(draft, draft.path)
