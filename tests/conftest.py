"""Shared fixtures: an initialised service in a temporary data directory, a real server.

The PKI is created once per test session (``eid init`` logic) and reused; tests that
change state (revocations) issue their own certificates first, so they never depend on
each other's order.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine
from sqlmodel import Session

from api import db
from api.services import init_service, open_keystore, pki_config
from api.settings import Settings
from keys.issuance import Purpose, issue_citizen_certificate
from keys.keystore import KeyStore
from keys.models import CertificateRecord
from keys.pki import Pki, load
from keys.profiles import CitizenSubject

VENV_BIN = Path(sys.executable).parent
EID = str(VENV_BIN / "eid")
PASSPHRASE = "test-passphrase-not-a-placeholder"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServiceEnv:
    """An initialised data directory and how to reach it."""

    data_dir: Path
    env: dict[str, str]
    settings: Settings

    def run_eid(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EID, *args], env=self.env, capture_output=True, text=True, check=check, timeout=120
        )

    _engines: ClassVar[dict[str, Engine]] = {}

    @property
    def engine(self) -> Engine:
        """One engine per database for the whole test session (disposed at the end)."""
        url = self.settings.resolved_database_url
        if url not in self._engines:
            self._engines[url] = db.make_engine(url)
        return self._engines[url]

    def open(self) -> tuple[Session, KeyStore, Pki]:
        keystore = open_keystore(self.settings)
        session = Session(self.engine)
        return session, keystore, load(session, keystore, pki_config(self.settings))


def fresh_database() -> str | None:
    """With TEST_POSTGRES_URL set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432), a new
    empty PostgreSQL database for this environment; otherwise None (SQLite in the data dir)."""
    base = os.environ.get("TEST_POSTGRES_URL")
    if not base:
        return None
    import uuid

    import psycopg

    name = f"eid_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _CREATED_DATABASES.append(name)
    return f"{base}/{name}"


_CREATED_DATABASES: list[str] = []


def _drop_databases() -> None:
    """Drop the databases this test session created."""
    base = os.environ.get("TEST_POSTGRES_URL")
    if not base or not _CREATED_DATABASES:
        return
    import psycopg

    with psycopg.connect(
        base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True
    ) as conn:
        while _CREATED_DATABASES:
            conn.execute(f'DROP DATABASE IF EXISTS "{_CREATED_DATABASES.pop()}" WITH (FORCE)')


def make_env(data_dir: Path, public_url: str = "http://127.0.0.1:8000") -> ServiceEnv:
    database_url = fresh_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EID_")} | {
        "EID_DATA_DIR": str(data_dir),
        "EID_PUBLIC_URL": public_url,
        "EID_KEYSTORE__PASSPHRASE": PASSPHRASE,
        # The suite logs in and enrols far more often from 127.0.0.1 than the per-address
        # limits allow; tests/api/test_rate_limits.py tests the limits with its own app.
        "EID_RATE_LIMITS__ENABLED": "false",
    }
    if database_url:
        env["EID_DATABASE_URL"] = database_url
    settings = Settings(
        data_dir=data_dir,
        public_url=public_url,
        database_url=database_url,
        keystore={"passphrase": PASSPHRASE},  # type: ignore[arg-type]
        rate_limits={"enabled": False},  # type: ignore[arg-type]
        _env_file=None,  # type: ignore[call-arg]
    )
    return ServiceEnv(data_dir=data_dir, env=env, settings=settings)


@pytest.fixture(scope="session", autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    while ServiceEnv._engines:
        ServiceEnv._engines.popitem()[1].dispose()
    _drop_databases()


@pytest.fixture(scope="session")
def service_env(tmp_path_factory: pytest.TempPathFactory) -> ServiceEnv:
    """A data directory with database, keys and PKI, shared by the session."""
    port = free_port()
    env = make_env(tmp_path_factory.mktemp("eid-data"), f"http://127.0.0.1:{port}")
    init_service(env.settings)
    env.env["EID_TEST_PORT"] = str(port)
    return env


@dataclass
class RunningServer:
    url: str
    env: ServiceEnv
    process: subprocess.Popen[bytes]


def wait_until_serving(
    process: subprocess.Popen[bytes], url: str, log: Path, *, path: str = "/healthz", seconds: float = 60
) -> None:
    """Wait until ``url + path`` answers 200; if the process dies or time runs out, kill it
    and fail with its log."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(log.read_text())
        time.sleep(0.1)


@pytest.fixture(scope="session")
def server(service_env: ServiceEnv) -> Iterator[RunningServer]:
    """``eid serve`` running on the session's data directory."""
    port = int(service_env.env["EID_TEST_PORT"])
    log = (service_env.data_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [EID, "serve", "--port", str(port)],
        env=service_env.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(process, url, service_env.data_dir / "server.log")
    yield RunningServer(url=url, env=service_env, process=process)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@dataclass
class IssuedCitizen:
    record: CertificateRecord
    private_key: ec.EllipticCurvePrivateKey
    der: bytes

    @property
    def pem(self) -> bytes:
        from asn1crypto import pem

        return pem.armor("CERTIFICATE", self.der)


def issue_citizen(
    env: ServiceEnv,
    purpose: Purpose = Purpose.AUTHENTICATION,
    *,
    subject: CitizenSubject | None = None,
    curve: ec.EllipticCurve | None = None,
) -> IssuedCitizen:
    """Issue a citizen certificate straight through ``keys/`` (enrolment comes later)."""
    private_key = ec.generate_private_key(curve or ec.SECP256R1())
    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    session, keystore, pki = env.open()
    try:
        record = issue_citizen_certificate(
            session,
            keystore,
            pki,
            subject=subject
            or CitizenSubject(
                country="EE",
                given_name="Mari-Liis",
                family_name="Männik",
                personal_code="49403136526",
            ),
            purpose=purpose,
            public_key_der=spki,
        )
    finally:
        session.close()
        keystore.close()
    assert record.der is not None
    return IssuedCitizen(record=record, private_key=private_key, der=record.der)


@pytest.fixture
def pem_files(service_env: ServiceEnv, tmp_path: Path) -> dict[str, Path]:
    """The PKI's certificates as PEM files, for openssl."""
    from asn1crypto import pem

    session, keystore, pki = service_env.open()
    session.close()
    keystore.close()
    files = {}
    for name, cert in {
        "root": pki.root.certificate,
        "citizen-ca": pki.citizen_ca.certificate,
        "ocsp": pki.ocsp_responder.certificate,
        "tsa": pki.tsa.certificate,
        "qr-seal": pki.qr_seal.certificate,
    }.items():
        path = tmp_path / f"{name}.pem"
        path.write_bytes(pem.armor("CERTIFICATE", cert.dump()))
        files[name] = path
    return files
