"""The ``eid`` command line: init, certificates, audit, and readable failures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EID, ServiceEnv, issue_citizen, make_env


@pytest.fixture
def fresh_env(tmp_path: Path) -> ServiceEnv:
    return make_env(tmp_path / "data")


def test_init_is_idempotent(fresh_env: ServiceEnv) -> None:
    first = json.loads(fresh_env.run_eid("init", "--json").stdout)
    second = json.loads(fresh_env.run_eid("init", "--json").stdout)
    assert first["root_serial"] == second["root_serial"]
    assert first["citizen_ca_serial"] == second["citizen_ca_serial"]
    listing = json.loads(fresh_env.run_eid("cert", "list", "--json").stdout)
    assert sorted(item["profile"] for item in listing) == [
        "citizen-ca",
        "ocsp-responder",
        "qr-seal",
        "root-ca",
        "tsa",
    ]
    keys = sorted(p.name for p in (fresh_env.data_dir / "keys").glob("*.key"))
    assert len(keys) == 7  # five certified keys and the two OpenID Connect keys
    for key in (fresh_env.data_dir / "keys").glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in key.read_bytes()


def test_cert_show_and_revoke_json(service_env: ServiceEnv) -> None:
    citizen = issue_citizen(service_env)
    shown = json.loads(service_env.run_eid("cert", "show", citizen.record.serial, "--json").stdout)
    assert shown["state"] == "issued"
    assert shown["profile"] == "citizen-auth"
    assert "client_auth" in shown["extended_key_usage"]
    assert "serialNumber=PNOEE-49403136526" in shown["subject"]

    pem = service_env.run_eid("cert", "show", citizen.record.serial, "--pem").stdout
    assert pem.startswith("-----BEGIN CERTIFICATE-----")

    revoked = json.loads(
        service_env.run_eid(
            "cert", "revoke", citizen.record.serial, "--reason", "certificate-hold", "--json"
        ).stdout
    )
    assert revoked["state"] == "revoked"
    assert revoked["revocation_reason"] == "certificate_hold"

    again = service_env.run_eid(
        "cert", "revoke", citizen.record.serial, "--reason", "certificate-hold", check=False
    )
    assert again.returncode == 1
    assert again.stderr.startswith("error: certificate")
    assert "Traceback" not in again.stderr

    released = json.loads(service_env.run_eid("cert", "release", citizen.record.serial, "--json").stdout)
    assert released["state"] == "issued"

    # A suspension can become a final revocation; a final revocation is final.
    service_env.run_eid("cert", "revoke", citizen.record.serial, "--reason", "certificate-hold")
    final = json.loads(
        service_env.run_eid(
            "cert", "revoke", citizen.record.serial, "--reason", "key-compromise", "--json"
        ).stdout
    )
    assert final["revocation_reason"] == "key_compromise"
    for reason in ("key-compromise", "certificate-hold"):
        assert (
            service_env.run_eid(
                "cert", "revoke", citizen.record.serial, "--reason", reason, check=False
            ).returncode
            == 1
        )
    assert service_env.run_eid("cert", "release", citizen.record.serial, check=False).returncode == 1


def test_unknown_serial_is_a_clear_error(service_env: ServiceEnv) -> None:
    result = service_env.run_eid("cert", "show", "abcdef", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: no certificate with serial abcdef"


def test_wrong_passphrase_is_a_clear_error_at_start(service_env: ServiceEnv) -> None:
    env = service_env.env | {"EID_KEYSTORE__PASSPHRASE": "wrong"}
    for args in (["init"], ["serve", "--port", "1"]):
        result = subprocess.run([EID, *args], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert "wrong key store passphrase" in result.stderr
        assert "Traceback" not in result.stderr


def test_production_refuses_placeholder_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EID_")} | {
        "EID_DATA_DIR": str(tmp_path),
        "EID_ENVIRONMENT": "production",
    }
    result = subprocess.run([EID, "init"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "EID_KEYSTORE__PASSPHRASE must be set to a real secret in production" in result.stderr
    assert not (tmp_path / "keys").exists()


def test_unknown_nested_setting_is_rejected(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EID_")} | {
        "EID_DATA_DIR": str(tmp_path),
        "EID_KEYSTORE__PASSFRASE": "typo",
    }
    result = subprocess.run([EID, "init"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "invalid configuration" in result.stderr
    assert "passfrase" in result.stderr.lower()


def test_audit_chain_verifies_and_detects_tampering(fresh_env: ServiceEnv) -> None:
    fresh_env.run_eid("init")
    report = json.loads(fresh_env.run_eid("audit", "verify", "--json").stdout)
    assert report["intact"] is True
    assert report["entries"] >= 5

    from sqlalchemy import text

    with fresh_env.engine.begin() as connection:
        connection.execute(text("UPDATE audit_entry SET target = 'forged' WHERE id = 2"))
    result = fresh_env.run_eid("audit", "verify", "--json", check=False)
    assert result.returncode == 1
    assert json.loads(result.stdout)["broken_at"] == 2


def test_config_docs_lists_every_setting() -> None:
    out = subprocess.run([EID, "config", "docs"], capture_output=True, text=True, check=True).stdout
    for name in (
        "EID_DATA_DIR",
        "EID_PUBLIC_URL",
        "EID_DATABASE_URL",
        "EID_KEYSTORE__PASSPHRASE",
        "EID_KEYSTORE__BACKEND",
        "EID_OCSP__VALIDITY_MINUTES",
    ):
        assert f"`{name}`" in out


def test_configuration_reference_is_current() -> None:
    out = subprocess.run([EID, "config", "docs"], capture_output=True, text=True, check=True).stdout
    committed = Path(__file__).parents[2] / "docs" / "configuration.md"
    assert committed.read_text() == out, "run `make docs` to regenerate docs/configuration.md"


@pytest.mark.skipif(shutil.which("softhsm2-util") is None, reason="SoftHSM2 missing")
def test_init_and_serve_with_a_pkcs11_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EID_")} | {
        "SOFTHSM2_CONF": str(conf),
        "EID_DATA_DIR": str(tmp_path / "data"),
        "EID_KEYSTORE__BACKEND": "pkcs11",
        "EID_KEYSTORE__TOKEN_LABEL": "eid-test",
        "EID_KEYSTORE__PIN": "1234",
    }
    subprocess.run(
        [
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            "eid-test",
            "--pin",
            "1234",
            "--so-pin",
            "5678",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    result = subprocess.run([EID, "init", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "data" / "keys").exists()  # nothing on disk: the keys are on the token
    listing = json.loads(
        subprocess.run(
            [EID, "cert", "list", "--json"], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    assert len(listing) == 5

    wrong = subprocess.run(
        [EID, "init"], env=env | {"EID_KEYSTORE__PIN": "9999"}, capture_output=True, text=True
    )
    assert wrong.returncode == 1
    assert "Traceback" not in wrong.stderr and "PIN" in wrong.stderr
    missing = subprocess.run(
        [EID, "init"], env=env | {"EID_KEYSTORE__TOKEN_LABEL": "nope"}, capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert "nope" in missing.stderr and "Traceback" not in missing.stderr
