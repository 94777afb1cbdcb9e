"""Soak: complete logins at half the peak rate for ten minutes; no errors, no memory growth.

Against a freshly started ``eid serve`` (SQLite, file key store, 1 worker, rate limits
off: one load generator on one address), with the scripted browsers and citizen apps of
``bench_oidc.py`` (every login: authorize, login page, app login start, the app's list
and signed approval, the browser's poll, resume, token; every answer checked, the ID
token verified like a relying party does):

1. the peak: ``--concurrency`` browsers doing logins back to back (after a warm-up);
2. the soak: logins started on a fixed schedule at half that rate (open loop: a login
   that is late starts at once, so a slow server shows as a missed schedule, not as a
   quietly lower rate) for ``--minutes``; the server's resident memory (VmRSS) is read
   every ``--sample`` seconds.

Pass: no failed login (any unexpected answer is a failure), the database holds exactly
one completed approval per login driven, the achieved rate within 5% of the schedule, and
memory at the end (median of the last minute's samples) no more than 10% above memory at
the start (median of the first minute's samples, taken after the peak run has filled the
caches).

    .venv/bin/python bench/bench_soak.py [--minutes 10] [--concurrency 8] [--sample 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import _citizen_app as ca
import _harness as h
import bench_oidc
import httpx
from _http1 import Http1Client, Http1Error

GROWTH_LIMIT = 0.10
RATE_TOLERANCE = 0.05


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise h.BenchError(f"no VmRSS for process {pid}")


@dataclass
class Soak:
    peak_rate: float
    target_rate: float
    seconds: float = 0.0
    logins: int = 0
    failures: list[str] = field(default_factory=list)
    late: int = 0
    """Logins that started more than one second after their slot."""
    samples: list[tuple[float, int]] = field(default_factory=list)
    """(seconds since the start, VmRSS in KiB)."""

    @property
    def rate(self) -> float:
        return self.logins / self.seconds if self.seconds else 0.0

    def memory(self, first: bool) -> float:
        """Median VmRSS (MiB) of the first or the last minute of samples."""
        end = self.samples[-1][0]
        window = [kib for t, kib in self.samples if (t <= 60 if first else t >= end - 60)]
        return statistics.median(window) / 1024

    @property
    def growth(self) -> float:
        return self.memory(first=False) / self.memory(first=True) - 1


async def _soak(
    driver: bench_oidc.LoginDriver,
    soak: Soak,
    pid: int,
    url: str,
    seconds: float,
    concurrency: int,
    sample: float,
) -> None:
    interval = 1 / soak.target_rate
    started = time.perf_counter()
    slots = iter(range(1 << 62))
    stop = started + seconds

    async def browser_loop(index: int) -> None:
        app = driver.apps[index % len(driver.apps)]
        async with Http1Client(url) as browser, Http1Client(url) as phone:
            while True:
                slot_at = started + next(slots) * interval
                if slot_at >= stop:
                    return
                delay = slot_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -1:
                    soak.late += 1
                try:
                    await driver.login(browser, phone, app)
                    soak.logins += 1
                except (h.BenchError, Http1Error, KeyError, ValueError) as exc:
                    soak.failures.append(f"{time.perf_counter() - started:.0f}s: {exc!r}"[:300])

    async def sampler() -> None:
        while time.perf_counter() < stop:
            soak.samples.append((time.perf_counter() - started, rss_kib(pid)))
            await asyncio.sleep(sample)

    watch = asyncio.create_task(sampler())
    await asyncio.gather(*(browser_loop(i) for i in range(concurrency)))
    await watch
    soak.seconds = time.perf_counter() - started
    soak.samples.append((soak.seconds, rss_kib(pid)))


def run(env: h.Environment, minutes: float, concurrency: int, sample: float) -> Soak:
    h.log("soak: registering a client, enrolling citizens over HTTP ...")
    rp = bench_oidc.register_client(env.service)
    apps = ca.enrol(env.service, env.eid.url, concurrency)
    jwks = httpx.get(env.eid.url + "/oauth/jwks", timeout=10).json()
    driver = bench_oidc.LoginDriver(env, rp, apps, jwks)
    before = bench_oidc.completed_logins(env, apps)
    driver.run(max(concurrency, 40), concurrency, bare=False)  # warm-up
    peak = driver.run(200, concurrency, bare=False)
    soak = Soak(peak_rate=peak.rate, target_rate=peak.rate / 2)
    h.log(f"soak: peak {peak.rate:.1f} logins/s; {minutes:g} min at {soak.target_rate:.1f}/s ...")
    with asyncio.Runner(loop_factory=bench_oidc.loop_factory()) as runner:
        runner.run(_soak(driver, soak, env.eid.process.pid, env.eid.url, minutes * 60, concurrency, sample))
    env.eid.check_alive()
    done = bench_oidc.completed_logins(env, apps) - before
    expected = max(concurrency, 40) + 200 + soak.logins
    if done != expected:
        soak.failures.append(f"{done} completed logins in the database, {expected} driven")
    return soak


def report(soak: Soak, minutes: float) -> tuple[str, bool]:
    on_rate = soak.rate >= soak.target_rate * (1 - RATE_TOLERANCE)
    no_errors = not soak.failures
    memory_ok = soak.growth <= GROWTH_LIMIT
    rss = [kib / 1024 for _, kib in soak.samples]
    lines = [
        "#### Soak: complete logins at half the peak rate",
        "",
        "| figure | measured | goal | result |",
        "|---|---:|---:|---|",
        f"| peak (browsers doing logins back to back) | {soak.peak_rate:.1f} logins/s | | |",
        f"| soak schedule | {soak.target_rate:.1f} logins/s for {minutes:g} min | half the peak | |",
        f"| achieved | {soak.rate:.1f} logins/s, {soak.logins} logins in {soak.seconds:.0f} s "
        f"({soak.late} started > 1 s late) | >= {1 - RATE_TOLERANCE:.0%} of the schedule | "
        f"{'PASS' if on_rate else 'FAIL'} |",
        f"| failed logins | {len(soak.failures)} | 0 | {'PASS' if no_errors else 'FAIL'} |",
        f"| server memory (VmRSS), first minute -> last minute | {soak.memory(True):.1f} -> "
        f"{soak.memory(False):.1f} MiB ({soak.growth:+.1%}); min {min(rss):.1f}, max {max(rss):.1f} | "
        f"<= +{GROWTH_LIMIT:.0%} | {'PASS' if memory_ok else 'FAIL'} |",
    ]
    if soak.failures:
        lines += ["", "First failures:", "", *(f"- `{f}`" for f in soak.failures[:5])]
    return "\n".join(lines), on_rate and no_errors and memory_ok


def bench(env: h.Environment, minutes: float, concurrency: int = 8, sample: float = 5.0) -> tuple[str, bool]:
    return report(run(env, minutes, concurrency, sample), minutes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    parser.add_argument("--concurrency", type=int, default=8, help="scripted browsers (default 8)")
    parser.add_argument(
        "--sample", type=float, default=5.0, help="seconds between memory samples (default 5)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.minutes < 2 or args.concurrency < 1 or args.sample <= 0:
        raise SystemExit(
            "--minutes at least 2 (a first and a last minute), --concurrency and --sample positive"
        )
    return h.with_service(args.keep, lambda env: bench(env, args.minutes, args.concurrency, args.sample))


if __name__ == "__main__":
    sys.exit(main())
