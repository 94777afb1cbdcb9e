"""The OAuth endpoints' own threads for Authlib (synchronous) and the database.

Starlette's ``run_in_threadpool`` goes through anyio (a capacity limiter, cancellation
scopes, run variables): about a fifth of a refresh grant's CPU time before this change.
The token endpoint and the login's pages (authorize, login, resume) hand their work to a
plain executor through the event loop instead.
Several threads, not one: while one waits for its commit to reach the disk (SQLite
``synchronous=FULL``), the others do their CPU work.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

WORKERS = 8
"""Requests handled at once; more only queue on the database's single writer."""

_P = ParamSpec("_P")
_T = TypeVar("_T")
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="oauth-token")
    return _executor


async def in_thread(function: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Run ``function`` in an OAuth thread, with the caller's context variables (request id)."""
    context = contextvars.copy_context()
    call = partial(context.run, function, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool(), call)
