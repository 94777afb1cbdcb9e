"""Shared helpers for the benchmarks: a throw-away service, servers, and ``wrk``.

Everything targets 127.0.0.1 only, every wait is bounded, and every process started
here is stopped on exit (normal, exception or signal).
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
EID = str(VENV_BIN / "eid")
PASSPHRASE = "benchmark-passphrase-not-a-placeholder"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

_children: list[subprocess.Popen[bytes]] = []


class BenchError(RuntimeError):
    """Something is wrong with the setup or the service answered errors: no figures."""


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)
    if process in _children:
        _children.remove(process)


def _stop_all() -> None:
    for process in list(_children):
        _stop(process)


def _on_signal(signum: int, _frame: object) -> None:
    _stop_all()
    raise SystemExit(128 + signum)


def _install_cleanup() -> None:
    """Stop our servers on exit and on SIGTERM; done when the first one starts (not at
    import: the tests import these modules)."""
    if not getattr(_install_cleanup, "done", False):
        atexit.register(_stop_all)
        signal.signal(signal.SIGTERM, _on_signal)
        _install_cleanup.done = True  # type: ignore[attr-defined]


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")


def _start(name: str, argv: list[str], env: dict[str, str], port: int, log_path: Path) -> Server:
    _install_cleanup()
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=BENCH_DIR)
    _children.append(process)
    server = Server(name=name, url=f"http://{HOST}:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise BenchError(f"{name} did not become healthy in {START_TIMEOUT:.0f}s:\n{server.log_tail()}")
        time.sleep(0.2)


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EID_")}


def start_bare(workdir: Path) -> Server:
    """``bench/bare_app.py`` under uvicorn, as the ceiling."""
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "bare_app.py"), "--port", str(port)]
    return _start("bare FastAPI", argv, _base_env(), port, workdir / "bare.log")


def stop(server: Server) -> None:
    _stop(server.process)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the service


@dataclass
class Service:
    """An initialised data directory, one issued citizen certificate, PEM files for openssl."""

    workdir: Path
    data_dir: Path
    port: int
    env: dict[str, str]
    files: dict[str, Path] = field(default_factory=dict)
    citizen_serial: str = ""

    @property
    def public_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def settings(self) -> Any:
        """The service's ``api.settings.Settings`` (for in-process database access)."""
        from api.settings import Settings

        return Settings(
            data_dir=self.data_dir,
            public_url=self.public_url,
            keystore={"passphrase": PASSPHRASE},  # type: ignore[arg-type]
            _env_file=None,  # type: ignore[call-arg]
        )

    def run_eid(self, *args: str) -> str:
        """An ``eid`` CLI command on this data directory; its standard output."""
        try:
            result = subprocess.run([EID, *args], env=self.env, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"eid {' '.join(args)} timed out") from exc
        if result.returncode != 0:
            raise BenchError(f"eid {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def start(self) -> Server:
        """``eid serve --port P`` on this data directory."""
        return _start(
            "eid serve",
            [EID, "serve", "--port", str(self.port)],
            self.env,
            self.port,
            self.workdir / "eid.log",
        )


def prepare_service(workdir: Path) -> Service:
    """``eid init`` logic in ``workdir/data``, then one citizen certificate, as in tests/conftest.py."""
    from asn1crypto import pem
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from sqlmodel import Session

    from api import db
    from api.services import init_service, open_keystore, pki_config
    from api.settings import Settings
    from keys.issuance import Purpose, issue_citizen_certificate
    from keys.pki import load
    from keys.profiles import CitizenSubject

    data_dir = workdir / "data"
    port = free_port()
    public_url = f"http://{HOST}:{port}"
    settings = Settings(
        data_dir=data_dir,
        public_url=public_url,
        keystore={"passphrase": PASSPHRASE},  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    init_service(settings)

    private_key = ec.generate_private_key(ec.SECP256R1())
    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    engine = db.make_engine(settings.resolved_database_url)
    keystore = open_keystore(settings)
    try:
        with Session(engine) as session:
            pki = load(session, keystore, pki_config(settings))
            record = issue_citizen_certificate(
                session,
                keystore,
                pki,
                subject=CitizenSubject(
                    country="EE",
                    given_name="Mari-Liis",
                    family_name="Männik",
                    personal_code="49403136526",
                ),
                purpose=Purpose.AUTHENTICATION,
                public_key_der=spki,
            )
            assert record.der is not None
            files = {}
            for name, cert in {
                "root": pki.root.certificate,
                "citizen-ca": pki.citizen_ca.certificate,
                "ocsp": pki.ocsp_responder.certificate,
                "tsa": pki.tsa.certificate,
            }.items():
                path = workdir / f"{name}.pem"
                path.write_bytes(pem.armor("CERTIFICATE", cert.dump()))
                files[name] = path
            files["citizen"] = workdir / "citizen.pem"
            files["citizen"].write_bytes(pem.armor("CERTIFICATE", record.der))
            serial = record.serial
    finally:
        keystore.close()
        engine.dispose()

    env = _base_env() | {
        "EID_DATA_DIR": str(data_dir),
        "EID_PUBLIC_URL": public_url,
        "EID_KEYSTORE__PASSPHRASE": PASSPHRASE,
        # One load generator on one address would meet the per-address limits of logins,
        # polling and enrolment (api/ratelimit.py) at once; they are for hostile clients,
        # not for measuring how fast the service is.
        "EID_RATE_LIMITS__ENABLED": "false",
    }
    return Service(workdir=workdir, data_dir=data_dir, port=port, env=env, files=files, citizen_serial=serial)


@contextmanager
def workspace(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="eid-bench-"))
    try:
        yield path
    finally:
        _stop_all()
        if keep:
            print(f"(kept {path})", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class Environment:
    """A prepared service with ``eid serve`` and the bare ceiling app both running."""

    workdir: Path
    service: Service
    eid: Server
    bare: Server


@contextmanager
def environment(keep: bool = False) -> Iterator[Environment]:
    """Temp data dir, initialised service, both servers; all cleaned up afterwards."""
    require_tools()
    with workspace(keep) as workdir:
        log(f"preparing a data directory in {workdir} ...")
        service = prepare_service(workdir)
        log(f"starting eid serve on {service.public_url} and the bare app ...")
        eid = service.start()
        try:
            bare = start_bare(workdir)
            try:
                yield Environment(workdir=workdir, service=service, eid=eid, bare=bare)
            finally:
                stop(bare)
        finally:
            stop(eid)


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a helper command (openssl); raise with its output if it fails."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"timed out after {timeout}s: {' '.join(argv)}") from exc
    if result.returncode != 0:
        raise BenchError(f"failed ({result.returncode}): {' '.join(argv)}\n{result.stdout}{result.stderr}")
    return result


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class Load:
    duration: int = 10
    connections: int = 16
    threads: int = 1
    warmup: int = 2
    rounds: int = 1


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    requests: int
    non_2xx: int
    socket_errors: dict[str, int]
    output: str
    latency_ms: dict[str, float] = field(default_factory=dict)
    """wrk's latency distribution (``--latency``): {"50%": ms, "75%": ..., "90%": ..., "99%": ...}."""
    walk: dict[str, int] = field(default_factory=dict)
    """Counters printed by a :func:`walk_script` (``sent``, ``bad``, ``exhausted``, ``lines``)."""
    server_cpu: float = 0.0
    """CPU seconds (user + system) the server process used during the run (set by
    :func:`run_scenario`): unlike req/s, CPU per request hardly depends on what else runs."""

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu / max(self.requests, 1) * 1000


_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s)\s*$", re.MULTILINE)
_WALK = re.compile(r"^walk: (.*)$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _lua_string(text: str) -> str:
    """A Lua long-bracket literal that cannot be closed by ``text``."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def post_script(workdir: Path, body_file: Path, content_type: str) -> Path:
    """A wrk Lua script that POSTs the bytes of ``body_file``."""
    script = workdir / f"post-{body_file.stem}.lua"
    script.write_text(
        f'local f = assert(io.open({_lua_string(str(body_file))}, "rb"))\n'
        'local body = f:read("*a")\n'
        "f:close()\n"
        'wrk.method = "POST"\n'
        "wrk.body = body\n"
        f'wrk.headers["Content-Type"] = {_lua_string(content_type)}\n'
    )
    return script


_WALK_LUA = r"""
-- Generated by bench/_harness.py walk_script(): each request is the next line of a file.
-- Line format: path TAB authorization-header-value (may be empty) TAB body.
local file = @FILE@
local fixed_path = @FIXED_PATH@
local content_type = @CONTENT_TYPE@
local expect = @EXPECT@
local wrap = @WRAP@
local pause_ms = @DELAY@

-- Globals: read from done() through thread:get().
sent, bad, exhausted, lines = 0, 0, 0, 0
local requests = {}
local fallback = nil

function init(args)
  for line in io.lines(file) do
    local path, auth, body = string.match(line, "^([^\t]*)\t([^\t]*)\t(.*)$")
    if path then
      local headers = {["Content-Type"] = content_type}
      if auth ~= "" then headers["Authorization"] = auth end
      lines = lines + 1
      requests[lines] = wrk.format("POST", fixed_path or path, headers, body)
    end
  end
  -- Past the end (wrap = false): a request the service answers 404, so the run fails.
  fallback = wrk.format("GET", "/walk-exhausted")
end

function request()
  if lines == 0 then  -- wrk's own check of the script, in its main state: never sent
    return wrk.format("POST", fixed_path or "/", {["Content-Type"] = content_type}, "")
  end
  sent = sent + 1
  if sent > lines then
    if not wrap then
      exhausted = exhausted + 1
      return fallback
    end
    return requests[(sent - 1) % lines + 1]
  end
  return requests[sent]
end

function response(status, headers, body)
  if status ~= 200 or (expect and not string.find(body, expect, 1, true)) then
    bad = bad + 1
  end
end

@DELAY_FUNCTION@

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("walk: sent=%d bad=%d exhausted=%d lines=%d\n",
      thread:get("sent"), thread:get("bad"), thread:get("exhausted"), thread:get("lines")))
  end
end
"""


def walk_script(
    path: Path,
    lines_file: Path,
    content_type: str,
    *,
    fixed_path: str | None = None,
    expect: str | None = None,
    wrap: bool = False,
    delay_ms: int | None = None,
) -> Path:
    """A wrk Lua script that POSTs one line of ``lines_file`` per request, in order.

    Each line is ``path<TAB>authorization<TAB>body`` (see :func:`write_lines`); all lines are
    formatted once in ``init`` (one Lua state per wrk thread; use ``-t1`` so the whole run
    walks one list). ``fixed_path`` sends every line to that path instead (the ceiling);
    ``expect``: a substring every 200 body must contain; ``wrap``: start over at the end
    (otherwise the run fails when the lines run out); ``delay_ms``: pause on each
    connection after every answer (wrk's ``delay()``). ``done()`` prints the counters that
    :func:`wrk` reads into ``WrkResult.walk``.
    """
    none = "nil"
    text = (
        _WALK_LUA.replace("@FILE@", _lua_string(str(lines_file)))
        .replace("@FIXED_PATH@", _lua_string(fixed_path) if fixed_path else none)
        .replace("@CONTENT_TYPE@", _lua_string(content_type))
        .replace("@EXPECT@", _lua_string(expect) if expect else none)
        .replace("@WRAP@", "true" if wrap else "false")
        .replace("@DELAY@", str(int(delay_ms or 0)))
        .replace(
            "@DELAY_FUNCTION@",
            "function delay()\n  return pause_ms\nend" if delay_ms else "-- no delay()",
        )
    )
    path.write_text(text)
    return path


def write_lines(path: Path, rows: Iterable[tuple[str, str, str]]) -> int:
    """Write ``(path, authorization, body)`` rows for :func:`walk_script`; returns the count."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for target, authorization, body in rows:
            if any(c in value for value in (target, authorization, body) for c in "\t\n"):
                raise BenchError("a request line may not contain a tab or a newline")
            out.write(f"{target}\t{authorization}\t{body}\n")
            count += 1
    return count


def wrk(url: str, load: Load, *, duration: int | None = None, script: Path | None = None) -> WrkResult:
    """Run wrk against ``url`` (127.0.0.1 only); raise if it saw any error."""
    if not url.startswith(f"http://{HOST}:"):
        raise BenchError(f"refusing to load anything but {HOST}: {url}")
    seconds = load.duration if duration is None else duration
    argv = [
        "wrk",
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
    ]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {seconds + 30}s") from exc
    out = result.stdout + result.stderr
    rps = _RPS.search(out)
    total = _TOTAL.search(out)
    if result.returncode != 0 or rps is None or total is None:
        raise BenchError(f"wrk failed ({result.returncode}):\n{out}")
    non_2xx = int(m.group(1)) if (m := _NON_2XX.search(out)) else 0
    socket_errors = {}
    if m := _SOCKET.search(out):
        socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
    latency = {f"{p}%": float(v) * _UNIT_MS[u] for p, v, u in _PERCENTILE.findall(out)}
    walk: dict[str, int] = {}
    for line in _WALK.findall(out):  # one line per wrk thread: add them up
        for item in line.split():
            key, _, value = item.partition("=")
            walk[key] = walk.get(key, 0) + int(value)
    outcome = WrkResult(float(rps.group(1)), int(total.group(1)), non_2xx, socket_errors, out, latency, walk)
    if walk.get("exhausted"):
        raise BenchError(
            f"the pre-generated requests ran out ({walk.get('lines')} lines, {walk['exhausted']} more "
            f"asked for): raise the request count; no figures:\n{out}"
        )
    if outcome.non_2xx or any(outcome.socket_errors.values()) or outcome.requests == 0 or walk.get("bad"):
        raise BenchError(
            f"the server answered errors under load ({outcome.non_2xx} non-2xx of "
            f"{outcome.requests}, {walk.get('bad', 0)} unexpected bodies, socket errors "
            f"{outcome.socket_errors}); no figures:\n{out}"
        )
    return outcome


# --------------------------------------------------------------------------- scenarios and tables


@dataclass
class Scenario:
    name: str
    server: Server
    url: str
    script: Path | None = None
    ceiling: str | None = None
    """Name of the ceiling scenario this one is compared with (None: it is a ceiling)."""
    goal: float | None = None
    """Goal as a fraction of the ceiling."""
    check: Callable[[], None] | None = None
    """Called before and after the measurement: proves the answers are the right ones."""
    prepare: Callable[[int], None] | None = None
    """Called before every wrk run (warm-up too) with its duration in seconds: fresh
    single-use requests (the script reads what this writes)."""
    verify: Callable[[WrkResult], None] | None = None
    """Called after every wrk run: proves the service did what wrk counted."""
    results: list[WrkResult] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(r.requests_per_second for r in self.results)

    def share_of(self, ceiling: Scenario) -> float:
        """Median over rounds of this scenario's rate / the ceiling's rate in the same round."""
        return statistics.median(
            mine.requests_per_second / theirs.requests_per_second
            for mine, theirs in zip(self.results, ceiling.results, strict=True)
        )


def measure(scenarios: list[Scenario], load: Load, log: Callable[[str], None]) -> None:
    """Warm each scenario up, then run them interleaved for ``load.rounds`` rounds."""
    for scenario in scenarios:
        if scenario.check is not None:
            scenario.check()
        if load.warmup:
            log(f"  warm-up  {scenario.name} ({load.warmup}s)")
            run_scenario(scenario, load, load.warmup)
    for round_ in range(1, load.rounds + 1):
        for scenario in scenarios:
            scenario.server.check_alive()
            result = run_scenario(scenario, load, load.duration)
            scenario.results.append(result)
            log(
                f"  round {round_}/{load.rounds}  {scenario.name:<34} "
                f"{result.requests_per_second:9.1f} req/s ({result.requests} requests)"
            )
    for scenario in scenarios:
        if scenario.check is not None:
            scenario.check()


def settled(read: Callable[[], Any], *, interval: float = 0.25, limit: float = 10.0) -> Any:
    """``read()`` once it gives the same value twice in a row, ``interval`` apart.

    wrk stops counting at the end of its duration while the server may still be finishing
    the requests it had in flight; counts taken from the database wait for those.
    Bounded: after ``limit`` seconds the last value is returned.
    """
    deadline = time.monotonic() + limit
    value = read()
    while time.monotonic() < deadline:
        time.sleep(interval)
        again = read()
        if again == value:
            return value
        value = again
    return value


def run_scenario(scenario: Scenario, load: Load, seconds: int) -> WrkResult:
    """One wrk run of a scenario, with its ``prepare`` before and ``verify`` after."""
    if scenario.prepare is not None:
        scenario.prepare(seconds)
    cpu_before = cpu_seconds(scenario.server.process.pid)
    result = wrk(scenario.url, load, duration=seconds, script=scenario.script)
    result = dataclasses.replace(result, server_cpu=cpu_seconds(scenario.server.process.pid) - cpu_before)
    if scenario.verify is not None:
        scenario.verify(result)
    return result


def table(title: str, scenarios: list[Scenario], load: Load) -> tuple[str, bool]:
    """The result table (Markdown) and whether every goal was met."""
    by_name = {s.name: s for s in scenarios}
    lines = [
        f"### {title}",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, wrk -t{load.threads} "
        f"-c{load.connections} -d{load.duration}s, {load.rounds} round(s); req/s: median, "
        "% of ceiling: median of the per-round ratios",
        "",
        "| scenario | req/s | % of ceiling | goal | result |",
        "|---|---:|---:|---:|---|",
    ]
    ok = True
    for s in scenarios:
        if s.ceiling is None:
            lines.append(f"| {s.name} (ceiling) | {s.rps:.0f} | 100% | | |")
            continue
        share = s.share_of(by_name[s.ceiling])
        passed = s.goal is None or share >= s.goal
        ok = ok and passed
        goal = f"{s.goal:.0%}" if s.goal is not None else "none"
        verdict = ("PASS" if passed else "FAIL") if s.goal is not None else "info"
        lines.append(f"| {s.name} | {s.rps:.0f} | {share:.0%} of {s.ceiling} | {goal} | {verdict} |")
    return "\n".join(lines), ok


def span(values: list[int]) -> str:
    """``3`` or ``0-16``: the range of some counts."""
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def cpu_text(results: list[WrkResult]) -> str:
    """``0.93 cores, 8.6 ms CPU per request``: the server's, median over the runs."""
    cores = statistics.median(r.server_cpu / max(_seconds(r), 1e-9) for r in results)
    per_request = statistics.median(r.cpu_ms_per_request for r in results)
    return f"{cores:.2f} cores, {per_request:.2f} ms CPU per request"


def _seconds(result: WrkResult) -> float:
    return result.requests / result.requests_per_second if result.requests_per_second else 0.0


def latency_text(results: list[WrkResult]) -> str:
    """``p50 1.2 ms, p75 ..., p99 ...``: each percentile's median over the runs."""
    keys = [k for k in ("50%", "75%", "90%", "99%") if all(k in r.latency_ms for r in results)]
    return ", ".join(
        f"p{k.rstrip('%')} {statistics.median(r.latency_ms[k] for r in results):.1f} ms" for k in keys
    )


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per scenario (default 2)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds; the table shows the median (default 1)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    return parser


def load_from(args: argparse.Namespace) -> Load:
    if args.duration < 1 or args.connections < 1 or args.threads < 1 or args.rounds < 1:
        raise SystemExit("--duration, --connections, --threads and --rounds must be at least 1")
    if args.connections < args.threads:
        raise SystemExit("--connections must be at least --threads")
    return Load(
        duration=args.duration,
        connections=args.connections,
        threads=args.threads,
        warmup=max(0, args.warmup),
        rounds=args.rounds,
    )


def exit_status(work: Callable[[], tuple[str, bool]]) -> int:
    """Run one benchmark and print its tables. Exit status: 0 every goal met, 1 a goal
    missed, 2 it could not run (or the service answered errors), 130 interrupted."""
    try:
        text, ok = work()
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(text)
    return 0 if ok else 1


def with_service(keep: bool, work: Callable[[Environment], tuple[str, bool]]) -> int:
    """``exit_status`` of ``work`` run against a fresh service and bare app."""

    def whole() -> tuple[str, bool]:
        with environment(keep) as env:
            return work(env)

    return exit_status(whole)


def require_tools() -> None:
    for tool in ("wrk", "openssl"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (make system-deps)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
