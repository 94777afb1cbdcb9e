"""The server benchmarks still run: each one, briefly, against a real ``eid serve``.

No figure is checked (the unit tests never time anything). What is checked is what a
refactoring breaks without anyone noticing until the next ``make bench``: that the
script gets through its setup, its ``openssl`` checks and its database checks, and prints
its table. Exit status 0 (every goal met) and 1 (a goal missed) both mean it ran; 2 means
it could not (bench/README.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BRIEF = ["--duration", "1", "--warmup", "1", "--rounds", "1"]

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("TEST_POSTGRES_URL")),
    reason="the benchmarks run on their own SQLite data directory: once is enough",
)


@pytest.mark.parametrize(
    ("script", "extra", "table"),
    [
        ("bench_approvals.py", [], "| approval answer"),
        ("bench_oidc.py", ["--logins", "16"], "| complete login"),
        ("bench_ocsp.py", [], "| OCSP POST, nonce"),
        ("bench_tsa.py", [], "| TSA POST"),
    ],
)
def test_benchmark_runs(script: str, extra: list[str], table: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *BRIEF, *extra],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    assert table in done.stdout, done.stdout[-3000:]
