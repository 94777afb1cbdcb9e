"""A key the service holds (the e-seal case): prepare and finish in one call, via KeyStore.sign."""

from __future__ import annotations

import secrets
from pathlib import Path

from keys.issuance import Purpose, issue_citizen_certificate
from keys.keystore import KeyAlgorithm
from keys.profiles import CitizenSubject
from signing import Level, StampSpec, async_sign_with_keystore
from tests.signing.conftest import Trust, make_pdf, run
from tests.signing.witnesses import async_pyhanko_report, pdfsig


def test_sign_with_a_key_in_the_key_store(trust: Trust, nss_db: str, tmp_path: Path) -> None:
    # Until the seal profile exists, a signing-profile certificate for a key-store key.
    key_id = f"test-seal-{secrets.token_hex(4)}"
    info = trust.keystore.create_key(key_id, KeyAlgorithm.EC_P384)
    record = issue_citizen_certificate(
        trust.session,
        trust.keystore,
        trust.pki,
        subject=CitizenSubject(
            country="EE", given_name="Seal", family_name="Registry", personal_code="38001085718"
        ),
        purpose=Purpose.SIGNING,
        public_key_der=info.public_key_der,
    )
    assert record.der is not None
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
