"""The PKCS#11 wallet on SoftHSM2, through the ``eid-app`` binary.

Each command runs in its own process, as a citizen runs it: SoftHSM2 reads
``SOFTHSM2_CONF`` and its token directory only in ``C_Initialize``, and PKCS#11 login
state is per process and token, so a process per command gives each test its own
tokens with no library re-initialisation in the pytest process. The service is the
protocol-shape fake behind a small local HTTP server (the subprocess cannot use an
in-process ``httpx.MockTransport``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from .fake_service import FakeService

pytestmark = pytest.mark.softhsm

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
EID_APP = str(Path(sys.executable).parent / "eid-app")
LABEL = "citizen"
SO_PIN = "87654321"
FACTORY_PIN = "0000"


@pytest.fixture
def hsm_env(tmp_path: Path) -> dict[str, str]:
    """A SoftHSM2 configuration with two fresh tokens, LABEL and LABEL-sign."""
    if not Path(MODULE).is_file() or shutil.which("softhsm2-util") is None:
        pytest.skip(f"SoftHSM2 not installed ({MODULE})")
    (tmp_path / "tokens").mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tmp_path / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for label in (LABEL, LABEL + "-sign"):
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                FACTORY_PIN,
                "--so-pin",
                SO_PIN,
            ],
            check=True,
            capture_output=True,
            env=env,
        )
    return env


@pytest.fixture
def fake() -> Iterator[FakeService]:
    """The fake service on a real local port."""
    holder: list[FakeService] = []

    class Bridge(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = httpx.Request(
                self.command, holder[0].base_url + self.path, headers=dict(self.headers.items()), content=body
            )
            response = holder[0].handle(request)
            self.send_response(response.status_code)
            self.send_header("Content-Type", response.headers.get("content-type", "application/json"))
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        do_GET = do_POST = _forward

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Bridge)
    holder.append(FakeService(base_url=f"http://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()
    thread.join()


class App:
    def __init__(self, env: dict[str, str], directory: Path, fake: FakeService) -> None:
        self.env, self.directory, self.fake = env, directory, fake

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EID_APP, "--wallet", str(self.directory), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def enroll(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self(
            "enroll", "--server", self.fake.base_url, "--activation-code", self.fake.new_activation_code(),
            "--pin1", "1234", "--pin2", "12345", "--pkcs11-module", MODULE, "--token-label", LABEL, *extra,
        )  # fmt: skip


@pytest.fixture
def app(hsm_env: dict[str, str], tmp_path: Path, fake: FakeService) -> App:
    return App(hsm_env, tmp_path / "wallet", fake)


KEY_ATTRIBUTES = textwrap.dedent(
    """
    import json, sys, pkcs11
    from pkcs11 import Attribute as A, ObjectClass
    token = pkcs11.lib(sys.argv[1]).get_token(token_label=sys.argv[2])
    with token.open(user_pin=sys.argv[3]) as session:
        keys = list(session.get_objects({A.CLASS: ObjectClass.PRIVATE_KEY}))
        print(json.dumps([
            {"label": k[A.LABEL], **{name: bool(k[getattr(A, name)]) for name in (
                "SENSITIVE", "EXTRACTABLE", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE", "SIGN",
                "DECRYPT", "UNWRAP", "DERIVE", "TOKEN", "PRIVATE")}}
            for k in keys
        ]))
    """
)


def key_attributes(app: App, label: str, pin: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-c", KEY_ATTRIBUTES, MODULE, label, pin],
        env=app.env,
        capture_output=True,
        text=True,
        check=True,
    )
    attributes: list[dict[str, Any]] = json.loads(result.stdout)
    return attributes


def test_token_wallet_lifecycle(app: App) -> None:
    result = app.enroll("--so-pin", SO_PIN, "--json")
    assert result.returncode == 0, result.stderr
    enrolled = json.loads(result.stdout)
    assert enrolled["puk"] is None  # the PUK is the tokens' SO PIN
    assert app.fake.violations == []

    # The keys live on the tokens, with the citizen's PINs, and cannot leave them.
    for label, pin, prefix in ((LABEL, "1234", "eid-auth-"), (LABEL + "-sign", "12345", "eid-sign-")):
        (attributes,) = key_attributes(app, label, pin)
        assert attributes["label"].startswith(prefix)
        assert attributes | {"label": ""} == {
            "label": "", "SENSITIVE": True, "EXTRACTABLE": False, "ALWAYS_SENSITIVE": True,
            "NEVER_EXTRACTABLE": True, "SIGN": True, "DECRYPT": False, "UNWRAP": False,
            "DERIVE": False, "TOKEN": True, "PRIVATE": True,
        }  # fmt: skip
    wallet = json.loads((app.directory / "wallet.json").read_text())
    assert wallet["keys"]["auth"]["storage"] == {
        "type": "pkcs11",
        "module": MODULE,
        "token_label": LABEL,
        "key_label": key_attributes(app, LABEL, "1234")[0]["label"],
    }
    status = app.json("status")
    assert status["keys"]["sign"]["storage"]["token_label"] == LABEL + "-sign"

    # Approve a login (PIN1, auth token) and a signature (PIN2, sign token).
    auth_id = app.fake.open_request("auth", hashlib.sha256(b"Hello World!").digest())
    assert app.json("approve", "--pin", "1234")["state"] == "completed"
    sign_id = app.fake.open_request("sign", hashlib.sha384(b"doc").digest(), hash_algorithm="sha384")
    assert app.json("approve", "--pin", "12345", "--request", sign_id)["state"] == "completed"
    assert app.fake.requests[auth_id].state == app.fake.requests[sign_id].state == "completed"
    assert app.fake.violations == []

    # Three wrong PIN2s (CKR_PIN_INCORRECT) block the signing key, in the app.
    request_id = app.fake.open_request("sign", hashlib.sha256(b"x").digest())
    errors = [app("approve", "--pin", "99999").stderr.strip() for _ in range(3)]
    assert errors == [
        "eid-app: wrong PIN2: 2 tries left",
        "eid-app: wrong PIN2: 1 try left",
        "eid-app: PIN2 is blocked: unblock it with your PUK: eid-app unblock --key sign",
    ]
    blocked = app("approve", "--pin", "12345")
    assert blocked.returncode == 1 and "PIN2 is blocked" in blocked.stderr
    assert app.json("status")["keys"]["sign"]["blocked"] is True

    # The PUK is the SO PIN; it has three tries too. C_InitPIN sets the new PIN.
    wrong = app("unblock", "--key", "sign", "--puk", "11112222", "--new-pin", "54321")
    assert wrong.returncode == 1 and wrong.stderr.strip() == "eid-app: wrong PUK: 2 tries left"
    done = app("unblock", "--key", "sign", "--puk", SO_PIN, "--new-pin", "54321")
    assert done.returncode == 0, done.stderr
    assert app.json("status")["puk_tries_left"] == 3
    assert app.json("approve", "--pin", "54321", "--request", request_id)["state"] == "completed"
    assert app.fake.violations == []


def test_without_so_pin_the_token_pins_must_already_match(app: App) -> None:
    result = app.enroll()
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"eid-app: token '{LABEL}' did not accept PIN1 (pass --so-pin to set it)"
    )
    assert app.fake.calls == []  # the activation code was not spent
    assert not (app.directory / "wallet.json").exists()


def test_a_missing_token_fails_before_any_call(app: App) -> None:
    result = app(
        "enroll", "--server", app.fake.base_url, "--activation-code", app.fake.new_activation_code(),
        "--pin1", "1234", "--pin2", "12345", "--pkcs11-module", MODULE, "--token-label", "nobody",
    )  # fmt: skip
    assert result.returncode == 1 and result.stderr.strip() == "eid-app: no PKCS#11 token labelled 'nobody'"
    assert app.fake.calls == []


def test_p384_on_the_token(app: App) -> None:
    result = app.enroll("--so-pin", SO_PIN, "--curve", "p384")
    assert result.returncode == 0, result.stderr
    request_id = app.fake.open_request("sign", hashlib.sha256(b"doc").digest())
    assert app.json("approve", "--pin", "12345", "--request", request_id)["state"] == "completed"
    assert app.fake.violations == []


def test_a_failed_enrolment_leaves_no_keys_on_the_tokens(app: App) -> None:
    result = app(
        "enroll", "--server", app.fake.base_url, "--activation-code", "USED-CODE", "--pin1", "1234",
        "--pin2", "12345", "--pkcs11-module", MODULE, "--token-label", LABEL, "--so-pin", SO_PIN,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == "eid-app: The activation code is not valid."
    assert key_attributes(app, LABEL, "1234") == []
    assert key_attributes(app, LABEL + "-sign", "12345") == []
