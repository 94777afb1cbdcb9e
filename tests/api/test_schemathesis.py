"""Schemathesis against our OpenAPI schema: no 5xx, whatever the input.

Bounded (10 examples per operation, fixed seed) so it stays within seconds. OCSP and TSA
bodies are binary protocol messages schemathesis cannot generate; tests/keys/
test_protocol_fuzz.py mutates those instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import RunningServer

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


def test_no_server_errors(server: RunningServer) -> None:
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            server.url + "/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "10",
            "--exclude-path",
            "/ocsp",
            "--exclude-path",
            "/tsa",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
