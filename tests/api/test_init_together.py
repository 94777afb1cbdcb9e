"""`eid init` run by replicas starting together (the container runs it before it serves).

Before they took turns, two processes on a fresh PostgreSQL database each made a root CA
(and its services' certificates), and one of them failed on a key the other had just
made; on SQLite the second failed the same way.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import load_der_x509_certificate
from sqlmodel import Session, select

from api import db
from keys.models import CertificateRecord
from tests.conftest import EID, make_env
from tests.openssl import verify


def test_two_inits_at_once_make_one_pki(tmp_path: Path) -> None:
    env = make_env(tmp_path / "data")
    runs = [subprocess.Popen([EID, "init"], env=env.env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [run.communicate(timeout=180)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors

    engine = db.make_engine(env.settings.resolved_database_url)
    try:
        with Session(engine) as session:
            records = session.exec(select(CertificateRecord)).all()
    finally:
        engine.dispose()
    per_profile = collections.Counter(record.profile for record in records)
    assert per_profile == {"root-ca": 1, "citizen-ca": 1, "ocsp-responder": 1, "tsa": 1, "qr-seal": 1}

    # The services' certificates chain to the one root (openssl as the witness).
    pem = {}
    for record in records:
        assert record.der is not None
        path = tmp_path / f"{record.profile}.pem"
        path.write_bytes(load_der_x509_certificate(record.der).public_bytes(serialization.Encoding.PEM))
        pem[record.profile] = path
    files = {"root": pem["root-ca"], "citizen-ca": pem["citizen-ca"]}
    for profile in ("citizen-ca", "ocsp-responder", "tsa", "qr-seal"):
        assert verify(pem[profile], files).endswith(": OK"), profile


def test_a_turn_that_does_not_end_is_named_not_waited_for_forever(tmp_path: Path) -> None:
    """An ``eid init`` stuck while it holds the lock (a key store waiting for its HSM) must
    not keep the other replicas waiting silently: after the wait they fail, saying why."""
    env = make_env(tmp_path / "data")
    engine = db.make_engine(env.settings.resolved_database_url)
    try:
        with db.initialisation_lock(engine):
            started = time.monotonic()
            with (
                pytest.raises(db.InitialisationBusy, match="another 'eid init' has been initialising"),
                db.initialisation_lock(engine, wait=0.5),
            ):
                pytest.fail("two holders of the initialisation lock at once")
            assert 0.5 <= time.monotonic() - started < 5

        # A turn that ends in time is waited for.
        holding, go_on, done = threading.Event(), threading.Event(), threading.Event()

        def hold_briefly() -> None:
            with db.initialisation_lock(engine):
                holding.set()
                go_on.wait(5)
                time.sleep(0.3)
                done.set()  # the last thing of its turn, before the lock is let go

        holder = threading.Thread(target=hold_briefly)
        holder.start()
        assert holding.wait(10)
        go_on.set()
        with db.initialisation_lock(engine, wait=10):
            assert done.is_set()  # its turn ended before ours began
        holder.join()
    finally:
        engine.dispose()
