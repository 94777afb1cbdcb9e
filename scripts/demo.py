"""`make run`: the service, a demo citizen enrolled in a demo wallet, and the wallet's page.

Starts `eid serve`, waits for it, enrols the demo citizen into `var/demo-wallet` once (a
wallet already there is kept), starts `eid-app ui` beside the server, and prints both
addresses with the demo PINs. Ctrl-C stops both. Run from the repository root after
`eid init`; HOST, PORT and WALLET_PORT come from the environment (the Makefile sets them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = int(os.environ.get("PORT", "8000"))
WALLET_PORT = int(os.environ.get("WALLET_PORT", "8001"))
DATA = Path(os.environ.get("EID_DATA_DIR", "var"))
WALLET = DATA / "demo-wallet"
CODE, GIVEN, FAMILY = "38001085718", "Jaak-Kristjan", "Jõeorg"
PIN1, PIN2 = "1234", "12345"


def _eid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "eid"), *args], capture_output=True, text=True, check=False)


def _wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server stopped (exit code {process.returncode})")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"the server did not answer at {url}")


def _activation_code() -> str:
    added = _eid(
        "citizen", "add", "--id-code", CODE, "--given-name", GIVEN, "--family-name", FAMILY, "--json"
    )
    if added.returncode == 0:
        return str(json.loads(added.stdout)["activation_code"])
    # Registered before (the wallet was deleted): a new code, like after a lost phone.
    again = _eid("citizen", "activation-code", "--id-code", CODE, "--json")
    if again.returncode != 0:
        sys.exit(f"could not get an activation code: {added.stderr or again.stderr}")
    return str(json.loads(again.stdout)["activation_code"])


def _enrol(url: str) -> None:
    wallet = WALLET / "wallet.json"
    if wallet.exists():
        if json.loads(wallet.read_text()).get("server_url", "").rstrip("/") == url:
            return
        # Enrolled with a service at another address (PORT changed): enrol again here.
        shutil.rmtree(WALLET)
    code = _activation_code()
    enrolled = subprocess.run(
        [str(BIN / "eid-app"), "--wallet", str(WALLET), "enroll", "--server", url]
        + ["--activation-code", code, "--pin1", PIN1, "--pin2", PIN2],
        capture_output=True,
        text=True,
        check=False,
    )
    if enrolled.returncode != 0:
        sys.exit(f"enrolling the demo wallet failed: {enrolled.stderr.strip()}")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (a container, a supervisor) stops like Ctrl-C


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    here = "127.0.0.1" if HOST == "0.0.0.0" else HOST
    url = os.environ.get("EID_PUBLIC_URL", f"http://{here}:{PORT}").rstrip("/")
    # The server must name the address the demo wallet uses (the audience of its tokens).
    server = subprocess.Popen(
        [str(BIN / "eid"), "serve", "--host", HOST, "--port", str(PORT)],
        env={**os.environ, "EID_PUBLIC_URL": url},
    )
    wallet_ui: subprocess.Popen[bytes] | None = None
    try:
        _wait_for(url, server)
        _enrol(url)
        wallet_ui = subprocess.Popen(
            [str(BIN / "eid-app"), "--wallet", str(WALLET), "ui", "--port", str(WALLET_PORT)],
            stdout=subprocess.DEVNULL,
        )
        print(
            "\n".join(
                [
                    "",
                    f"  The service:      {url}/          (the demo service: {url}/demo)",
                    f"  The demo wallet:  http://127.0.0.1:{WALLET_PORT}/   (the citizen's phone)",
                    f"  Demo citizen:     {GIVEN} {FAMILY}, personal code {CODE}",
                    f"  Demo PINs:        PIN1 {PIN1} (log in), PIN2 {PIN2} (sign)",
                    "",
                    "  Ctrl-C stops both.",
                    "",
                ]
            ),
            flush=True,
        )
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in (wallet_ui, server):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    main()
