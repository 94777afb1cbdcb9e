"""OpenSSL as the independent witness for certificates and OCSP, shared by the tests."""

from __future__ import annotations

import subprocess
from pathlib import Path


def verify(cert: Path, pem_files: dict[str, Path], *extra: str) -> str:
    """``openssl verify`` of ``cert`` up to our root, through the Citizen CA; its stdout."""
    result = subprocess.run(
        [
            "openssl",
            "verify",
            *extra,
            "-CAfile",
            str(pem_files["root"]),
            "-untrusted",
            str(pem_files["citizen-ca"]),
            str(cert),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout.strip()


def ocsp(server_url: str, pem_files: dict[str, Path], cert: Path, *extra: str) -> str:
    """``openssl ocsp`` for ``cert`` against the server's responder; stdout and stderr."""
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(pem_files["citizen-ca"]),
            "-cert",
            str(cert),
            "-url",
            server_url + "/ocsp",
            "-CAfile",
            str(pem_files["root"]),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout + result.stderr
