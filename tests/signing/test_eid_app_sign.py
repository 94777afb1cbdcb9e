"""`eid-app sign`: the citizen's side of the whole flow, checked with poppler's pdfsig."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RunningServer
from tests.signing.conftest import make_pdf
from tests.signing.witnesses import pdfsig
from tests.wallet.test_end_to_end import app, enrol


def test_eid_app_signs_a_pdf(server: RunningServer, tmp_path: Path, nss_db: str) -> None:
    wallet = tmp_path / "wallet"
    enrol(server, wallet)
    source = make_pdf(tmp_path / "application.pdf")
    out = tmp_path / "application-signed.pdf"
    result = app(
        wallet, "sign", str(source), "--out", str(out), "--pin2", "12345", "--reason", "I agree", "--json"
    )
    assert json.loads(result.stdout)["state"] == "completed"
    report = pdfsig(nss_db, out)
    assert "Signature Validation: Signature is Valid." in report[0]
    assert "Certificate Validation: Certificate is Trusted." in report[0]
    assert any("JÕEORG" in line for line in report[0])

    wrong = app(wallet, "sign", str(source), "--out", str(tmp_path / "x.pdf"), "--pin2", "99999", check=False)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert not (tmp_path / "x.pdf").exists()
