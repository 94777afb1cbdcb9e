"""The hash state after a document's bytes, kept from the prepare step for the finish.

Every later revision of a signed document starts with the uploaded document: the
signature's /ByteRange and the document time stamp's both begin with its bytes. The
prepare step hashes them once (``_streams.OriginalDigest``); ``remember`` keeps a copy
of that hash object, so the document time stamp of B-LTA continues it over the few
kilobytes after the document instead of reading 100 MB a second time.

A state is only a speed-up, never needed: it lives in this process's memory (another
instance or a restart has none, and hashes the whole file as before), the cache is
bounded (``MAX_STATES``, oldest out first), and it is keyed by the file as it was hashed
(path, device, inode, size, modification time) and the algorithm, so it cannot be taken
for another file or for the same file after a change.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

MAX_STATES = 256
"""States kept at once (a SHA-256 state is about 200 bytes)."""

_Key = tuple[str, int, int, int, int, str]
_lock = threading.Lock()
_states: OrderedDict[_Key, hashlib._Hash] = OrderedDict()


def _key(path: Path, seen: os.stat_result, algorithm: str) -> _Key:
    return (str(path.absolute()), seen.st_dev, seen.st_ino, seen.st_size, seen.st_mtime_ns, algorithm)


def remember(path: Path, seen: os.stat_result, algorithm: str, state: hashlib._Hash) -> None:
    """Keep a copy of ``state``, the ``algorithm`` hash of all of ``path`` as ``seen``."""
    if state.name != algorithm:
        raise ValueError(f"a {state.name} state is not a {algorithm} one")
    with _lock:
        _states[_key(path, seen, algorithm)] = state.copy()
        while len(_states) > MAX_STATES:
            _states.popitem(last=False)


def recall(path: Path, seen: os.stat_result, algorithm: str) -> hashlib._Hash | None:
    """A copy of the state kept for ``path`` as it is ``seen`` now, or None."""
    with _lock:
        state = _states.get(_key(path, seen, algorithm))
        return state.copy() if state is not None else None


def forget(path: Path) -> None:
    """Drop every state kept for ``path`` (it is going away or changing)."""
    name = str(path.absolute())
    with _lock:
        for key in [key for key in _states if key[0] == name]:
            del _states[key]


def forget_all() -> None:
    """Drop every state (tests: the finish of another instance)."""
    with _lock:
        _states.clear()
