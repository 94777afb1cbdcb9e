"""A key the service holds (the e-seal case): prepare and finish in one call, via KeyStore.sign."""

from __future__ import annotations

import secrets
from pathlib import Path

from keys.profiles import OrganisationSubject
from keys.seals import issue_seal_certificate
from signing import Level, StampSpec, async_sign_with_keystore
from tests.signing.conftest import Trust, make_pdf, run
from tests.signing.witnesses import async_pyhanko_report, pdfsig


def test_sign_with_a_key_in_the_key_store(trust: Trust, nss_db: str, tmp_path: Path) -> None:
    # An organisation's e-seal: a key in the key store with an EN 319 412-3 certificate.
    record = issue_seal_certificate(
        trust.session,
        trust.keystore,
        trust.pki,
        subject=OrganisationSubject(country="EE", name="Population Register", identifier="NTREE-70000310"),
        client_id=f"test-{secrets.token_hex(4)}",
    )
    assert record.der is not None and record.key_id is not None
    key_id = record.key_id
    workdir = tmp_path / "work"
    workdir.mkdir()
    out = run(
        async_sign_with_keystore(
            make_pdf(tmp_path / "in.pdf"),
            tmp_path / "sealed.pdf",
            workdir=workdir,
            keystore=trust.keystore,
            key_id=key_id,
            certificate=record.der,
            chain=trust.chain,
            timestamper=trust.timestamper(),
            validation=trust.revocation(),
            level=Level.B_LTA,
            stamp=StampSpec(signer_name="Population Register", qr_url="https://eid.example/v/seal"),
        )
    )
    assert list(workdir.iterdir()) == []  # the prepared file is gone
    assert "Signature Validation: Signature is Valid." in pdfsig(nss_db, out)[0]
    report = run(async_pyhanko_report(out, trust.root_der))
    assert report.status.bottom_line and report.level == "B-LTA"
