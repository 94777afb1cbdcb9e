"""Validation in child processes, under a memory cap and a wall-clock limit.

Hostile PDFs can make a parser slow (thousands of revisions) or hungry (decompression
bombs). Each validation therefore runs in one of a few long-lived worker processes:

- the child caps its own address space with ``resource.setrlimit(RLIMIT_AS)``, so a bomb
  ends in a ``MemoryError`` inside the child (which reports it and exits), not in the
  server's memory;
- the parent waits at most ``timeout_seconds``; then it kills the child and starts a
  fresh one on the next request;
- either way the caller gets an INDETERMINATE report saying which limit stopped it.

The report crosses back as plain data (``DocumentReport.to_dict``). Revocation data for
our own certificates is asked from the parent over the same pipe (the parent holds the
database and the key store; the child holds nothing but the file).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import resource
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from ._redact import redact
from .pdf import POLICY, RevocationData, RevocationProvider, UnreadableDocument, async_validate_document
from .report import Check, DocumentReport, Indication
from .trust import TrustConfig

STARTUP_SECONDS = 60.0
"""How long a new worker may take to import its libraries (not counted in the timeout)."""
_CONTEXT = multiprocessing.get_context("spawn")
"""spawn, not fork: the server's threads, event loop and open database connections must
not be copied into a child."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How validation work is bounded."""

    workers: int = 2
    """Worker processes (validations that can run at the same time)."""
    timeout_seconds: float = 30.0
    """Wall-clock time one validation may take before its worker is killed."""
    memory_mb: int = 1024
    """Address-space cap of each worker process, in MiB."""


class WorkerPool:
    """A few long-lived validation processes; safe to share between event loops and threads."""

    def __init__(self, *, trust: TrustConfig, limits: Limits | None = None) -> None:
        self.trust = trust
        self.limits = limits or Limits()
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.limits.workers)
        self._closed = False
        self.last_peak_kb: int | None = None
        """Peak resident memory (KiB) of the worker during the last validation."""
        self.idle_kb: int | None = None
        """Resident memory (KiB) of the last worker started, libraries loaded, before work."""

    async def async_validate(
        self,
        path: Path,
        *,
        revocation: RevocationProvider | None = None,
        document_name: str | None = None,
        now: datetime | None = None,
    ) -> DocumentReport:
        """Validate ``path`` in a worker; ``UnreadableDocument`` if it is not a PDF."""
        now = now or datetime.now(UTC)
        await asyncio.to_thread(self._slots.acquire)
        worker: _Worker | None = None
        try:
            worker = self._take()
            report = await self._exchange(worker, path, revocation, document_name, now)
            return report
        finally:
            if worker is not None:
                self._give_back(worker)
            self._slots.release()

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [worker.process.pid for worker in self._idle if worker.process.pid is not None]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise RuntimeError("the validation worker pool is closed")
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    return worker
                worker.stop()
        return _Worker.start(self.trust, self.limits.memory_mb)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if worker.healthy and not self._closed and worker.process.is_alive():
                self._idle.append(worker)
                return
        worker.stop()

    async def _exchange(
        self,
        worker: _Worker,
        path: Path,
        revocation: RevocationProvider | None,
        document_name: str | None,
        now: datetime,
    ) -> DocumentReport:
        if not worker.ready:
            started = await asyncio.to_thread(worker.conn.poll, STARTUP_SECONDS)
            try:
                hello = worker.conn.recv() if started else None
            except (EOFError, OSError):
                hello = None
            if isinstance(hello, tuple) and hello[0] == "ready":
                worker.ready, self.idle_kb = True, hello[1]
            else:
                worker.kill()
                return limit_report("the validation process did not start", document_name, now)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.timeout_seconds
        worker.conn.send(("validate", str(path), document_name, revocation is not None, now.isoformat()))
        while True:
            remaining = deadline - loop.time()
            ready = remaining > 0 and await asyncio.to_thread(worker.conn.poll, remaining)
            if not ready:
                worker.kill()
                return limit_report(
                    f"the validation took longer than {self.limits.timeout_seconds:g} seconds and was stopped",
                    document_name,
                    now,
                )
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                worker.kill()
                return limit_report(
                    "the validation process ended unexpectedly (it may have run out of memory)",
                    document_name,
                    now,
                )
            kind = message[0]
            if kind == "revocation":
                data = await _ask(revocation, tuple(message[1]))
                worker.conn.send(("revocation", list(data.ocsp_responses), list(data.crls)))
            elif kind == "report":
                self.last_peak_kb = message[2]
                return DocumentReport.from_dict(message[1])
            elif kind == "unreadable":
                raise UnreadableDocument(message[1])
            else:  # "memory" or "crash": the child exits after saying so
                worker.kill()
                reason = (
                    f"the validation needed more than {self.limits.memory_mb} MB of memory and was stopped"
                    if kind == "memory"
                    else f"the validation failed: {message[1]}"
                )
                return limit_report(reason, document_name, now)


async def _ask(provider: RevocationProvider | None, certificates: tuple[bytes, ...]) -> RevocationData:
    if provider is None:
        return RevocationData()
    try:
        result = provider(certificates)
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        assert isinstance(result, RevocationData)
        return result
    except Exception:  # noqa: BLE001 - no data: the child's hard fail reports it
        return RevocationData()


def limit_report(reason: str, document_name: str | None, now: datetime) -> DocumentReport:
    """The INDETERMINATE report of a validation a limit stopped."""
    return DocumentReport(
        policy=POLICY,
        validation_time=now,
        document_name=document_name,
        indication=Indication.INDETERMINATE,
        checks=(Check(name="resource_limits", passed=None, detail=reason),),
        errors=(reason,),
        caught_by=("resource_limits",),
    )


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    conn: Connection
    healthy: bool = True
    ready: bool = False

    @classmethod
    def start(cls, trust: TrustConfig, memory_mb: int) -> _Worker:
        parent, child = _CONTEXT.Pipe(duplex=True)
        process = _CONTEXT.Process(
            target=_child_main,
            args=(child, dataclasses.asdict(trust), memory_mb * 1024 * 1024),
            name="eid-verify-worker",
            daemon=True,
        )
        process.start()
        child.close()
        return cls(process=process, conn=parent)

    def kill(self) -> None:
        self.healthy = False
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)

    def stop(self) -> None:
        self.healthy = False
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(("stop",))
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.kill()
        self.conn.close()


def _child_main(conn: Connection, trust: dict[str, Any], memory_bytes: int) -> None:
    """The worker: set the cap, then validate what the parent sends until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
    config = TrustConfig(**{key: tuple(value) for key, value in trust.items()})

    def ask_parent(certificates: tuple[bytes, ...]) -> RevocationData:
        conn.send(("revocation", list(certificates)))
        _, ocsps, crls = conn.recv()
        return RevocationData(ocsp_responses=tuple(ocsps), crls=tuple(crls))

    conn.send(("ready", _resident_kb()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] != "validate":
            return
        _, path, name, wants_revocation, now = message
        _reset_peak()
        try:
            report = asyncio.run(
                async_validate_document(
                    Path(path),
                    trust=config,
                    revocation=ask_parent if wants_revocation else None,
                    document_name=name,
                    now=datetime.fromisoformat(now),
                )
            )
            conn.send(("report", report.to_dict(), _peak_kb()))
        except UnreadableDocument as exc:
            conn.send(("unreadable", str(exc)))
        except MemoryError:
            _last_words(conn, ("memory", "out of memory"))
            return
        except BaseException as exc:  # noqa: BLE001 - reported, then this process ends
            _last_words(conn, ("crash", f"{type(exc).__name__}: {redact(str(exc))[:200]}"))
            return


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM), so each validation's peak is its own."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as marks:
        marks.write("5")


def _status_kb(field: str) -> int | None:
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _peak_kb() -> int:
    """Peak resident memory since the last reset (KiB); ru_maxrss where /proc is missing."""
    return _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _resident_kb() -> int:
    return _status_kb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _last_words(conn: Connection, message: tuple[str, str]) -> None:
    with contextlib.suppress(Exception):  # the parent sees the pipe close instead
        conn.send(message)
