"""End to end with the real programs: `eid citizen add` → `eid-app enroll` → a login in the
browser approved with `eid-app approve` → an authenticated identity. Also with the wallet
keys on a SoftHSM2 token, and the PIN rules against the real service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests import openssl
from tests.conftest import RunningServer
from tests.identity.test_login_with_app import fresh_code

EID_APP = str(Path(sys.executable).parent / "eid-app")


def app(
    wallet: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EID_APP, "--wallet", str(wallet), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
        env=env or dict(os.environ),
    )


def enrol(
    server: RunningServer, wallet: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[str, dict[str, object]]:
    code = fresh_code()
    added = json.loads(
        server.env.run_eid(
            "citizen",
            "add",
            "--id-code",
            code,
            "--given-name",
            "Jaak-Kristjan",
            "--family-name",
            "Jõeorg",
            "--json",
        ).stdout
    )
    result = app(
        wallet,
        "enroll",
        "--server",
        server.url,
        "--activation-code",
        added["activation_code"],
        "--pin1",
        "1234",
        "--pin2",
        "12345",
        "--json",
        *extra,
        env=env,
    )
    return code, json.loads(result.stdout)


def login_in_background(server: RunningServer, code: str) -> tuple[httpx.Client, dict[str, str]]:
    browser = httpx.Client(base_url=server.url)
    started = browser.post("/api/v1/auth/app", json={"personal_code": code})
    assert started.status_code == 201, started.text
    return browser, started.json()


def test_enrol_and_log_in_with_eid_app(
    server: RunningServer, tmp_path: Path, pem_files: dict[str, Path]
) -> None:
    wallet = tmp_path / "wallet"
    code, enrolled = enrol(server, wallet)
    assert enrolled["citizen"]["family_name"] == "Jõeorg"  # type: ignore[index]

    # The certificates the app received verify with openssl and are good per OCSP.
    for purpose in ("auth", "sign"):
        serial = enrolled["certificates"][purpose]["serial"]  # type: ignore[index]
        cert = tmp_path / f"{purpose}.pem"
        cert.write_text(server.env.run_eid("cert", "show", str(serial), "--pem").stdout)
        assert openssl.verify(cert, pem_files) == f"{cert}: OK"
        assert f"{cert}: good" in openssl.ocsp(server.url, pem_files, cert)

    browser, started = login_in_background(server, code)
    with closing(browser):
        pending = json.loads(app(wallet, "pending", "--json").stdout)
        assert [r["verification_code"] for r in pending["requests"]] == [started["verification_code"]]
        approved = app(wallet, "approve", "--pin", "1234", "--wait", "5", "--json")
        assert json.loads(approved.stdout)["state"] == "completed"
        status = browser.get(f"/api/v1/auth/app/{started['request_id']}").json()
        assert status["state"] == "completed"
        assert status["identity"]["sub"] == f"EE{code}"
        assert status["identity"]["given_name"] == "Jaak-Kristjan"


def test_wrong_pins_block_the_key_and_the_puk_unblocks(server: RunningServer, tmp_path: Path) -> None:
    wallet = tmp_path / "wallet"
    code, enrolled = enrol(server, wallet)
    browser, started = login_in_background(server, code)
    with closing(browser):
        for _ in range(3):
            wrong = app(wallet, "approve", "--pin", "9999", "--request", started["request_id"], check=False)
            assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
        blocked = app(wallet, "approve", "--pin", "1234", "--request", started["request_id"], check=False)
        assert blocked.returncode == 1 and "blocked" in blocked.stderr.lower()
        app(wallet, "unblock", "--key", "auth", "--puk", str(enrolled["puk"]), "--new-pin", "4321")
        approved = app(wallet, "approve", "--pin", "4321", "--request", started["request_id"], "--json")
        assert json.loads(approved.stdout)["state"] == "completed"


def test_sign_key_is_not_used_for_login_and_refusal_reaches_the_browser(
    server: RunningServer, tmp_path: Path
) -> None:
    wallet = tmp_path / "wallet"
    code, _enrolled = enrol(server, wallet)
    browser, started = login_in_background(server, code)
    with closing(browser):
        # PIN2 is the signing key's PIN: for a login request it is simply the wrong PIN.
        wrong = app(wallet, "approve", "--pin", "12345", "--request", started["request_id"], check=False)
        assert wrong.returncode == 1
        refused = app(wallet, "refuse", "--request", started["request_id"], "--json")
        assert json.loads(refused.stdout)["state"] == "refused"
        assert browser.get(f"/api/v1/auth/app/{started['request_id']}").json()["state"] == "refused"


@pytest.mark.skipif(shutil.which("softhsm2-util") is None, reason="SoftHSM2 missing")
def test_softhsm_wallet(server: RunningServer, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = dict(os.environ) | {"SOFTHSM2_CONF": str(conf)}
    for label, pin in (("citizen", "1234"), ("citizen-sign", "12345")):
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                pin,
                "--so-pin",
                "87654321",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
    wallet = tmp_path / "wallet"
    code, enrolled = enrol(
        server,
        wallet,
        "--pkcs11-module",
        "/usr/lib/softhsm/libsofthsm2.so",
        "--token-label",
        "citizen",
        "--so-pin",
        "87654321",
        env=env,
    )
    status = json.loads(app(wallet, "status", "--json", env=env).stdout)
    assert status["keys"]["auth"]["storage"]["type"] == "pkcs11"
    browser, started = login_in_background(server, code)
    with closing(browser):
        approved = app(
            wallet, "approve", "--pin", "1234", "--request", started["request_id"], "--json", env=env
        )
        assert json.loads(approved.stdout)["state"] == "completed"
        assert (
            browser.get(f"/api/v1/auth/app/{started['request_id']}").json()["identity"]["sub"] == f"EE{code}"
        )
    assert enrolled["certificates"]


def test_waiting_approval(server: RunningServer, tmp_path: Path) -> None:
    """`approve --wait` picks up a request that arrives while it waits."""
    wallet = tmp_path / "wallet"
    code, _ = enrol(server, wallet)
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    waiter = threading.Thread(
        target=lambda: result.setdefault(
            "r", app(wallet, "approve", "--pin", "1234", "--wait", "20", "--json")
        )
    )
    waiter.start()
    browser, started = login_in_background(server, code)
    waiter.join(timeout=30)
    with closing(browser):
        assert json.loads(result["r"].stdout)["state"] == "completed"
        assert browser.get(f"/api/v1/auth/app/{started['request_id']}").json()["state"] == "completed"
