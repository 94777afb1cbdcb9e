"""The validation report of good documents, and the trust and revocation rules.

Every level signed through our signing service passes, with the level, signer, times,
chain, revocation source and coverage the report promises; pdfsig (NSS) and pyHanko's
own validator agree on the good documents. Missing revocation data for our own PKI,
a revoked signer and a self-made CA do not pass.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlmodel import Session

from keys.issuance import Purpose
from keys.revocation import revoke_certificate
from signing import Level
from tests.conftest import IssuedCitizen, ServiceEnv, issue_citizen
from tests.signing.conftest import Trust, make_pdf
from tests.signing.conftest import nss_db as nss_db  # noqa: F401 - a fixture, used by name
from tests.signing.conftest import root_pem as root_pem  # noqa: F401 - a fixture, used by name
from tests.signing.conftest import signers as signers  # noqa: F401 - a fixture, used by name
from tests.signing.conftest import trust as trust  # noqa: F401 - a fixture, used by name
from tests.signing.witnesses import async_pyhanko_report, pdfsig
from tests.verification._pdfs import (
    provider,
    pyhanko_sign,
    run,
    self_made_ca,
    sign,
    simple_signer,
    trust_config,
)
from verification import DocumentReport, Indication, async_validate_document, build_trust
from verification.trust import TrustConfigurationError, load_trusted_list

LEVELS = [Level.B_B, Level.B_T, Level.B_LT, Level.B_LTA]


@pytest.fixture(scope="module")
def documents(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """One document per level, signed once for the module."""
    directory = tmp_path_factory.mktemp("levels")
    source = make_pdf(directory / "in.pdf")
    return {
        level.value: sign(trust, signers["p256"], source, directory / f"{level.value}.pdf", level)
        for level in LEVELS
    }


def validate(trust: Trust, path: Path, *, with_revocation: bool = True, **options: object) -> DocumentReport:
    return run(
        async_validate_document(
            path,
            trust=trust_config(trust),
            revocation=provider(trust) if with_revocation else None,
            document_name=path.name,
            **options,  # type: ignore[arg-type]
        )
    )


@pytest.mark.parametrize("level", [level.value for level in LEVELS])
def test_every_level_passes_with_its_level(
    trust: Trust, documents: dict[str, Path], nss_db: str, level: str
) -> None:
    report = validate(trust, documents[level])
    assert report.indication is Indication.TOTAL_PASSED, report.to_json()
    assert (report.signature_count, report.valid_count) == (1, 1)
    signature = report.signatures[0]
    assert signature.level == level
    assert signature.sub_indication is None and signature.caught_by == () and signature.errors == ()
    assert signature.signer_name == "MARI-LIIS MÄNNIK"
    assert signature.personal_code == "49403136526"
    assert signature.claimed_signing_time is not None
    pki = trust.pki
    assert [c.subject for c in signature.chain[1:]] == [
        pki.citizen_ca.certificate.subject.human_friendly,
        pki.root.certificate.subject.human_friendly,
    ]
    assert "MÄNNIK" in signature.chain[0].subject
    assert signature.coverage is not None and signature.coverage.whole_document
    assert {check.name for check in signature.checks} >= {
        "structure", "byte_range", "integrity", "signature_value", "modifications", "certificate_chain", "revocation"
    }  # fmt: skip
    assert signature.revocation is not None and signature.revocation.status == "good"
    if level in ("B-B", "B-T"):
        # Nothing embedded: our responder was asked in process.
        assert "asked in process" in signature.revocation.source
        assert (signature.best_proven_time is None) == (level == "B-B")
    else:
        assert "embedded in the document (DSS)" in signature.revocation.source
        assert signature.best_proven_time is not None
        later = {revision.change for revision in signature.coverage.later_revisions}
        assert later <= {"validation data", "document time stamp"} and later
    # Independent witnesses: NSS (pdfsig) and pyHanko's validator with only our root.
    lines = pdfsig(nss_db, documents[level])[0]
    assert "Signature Validation: Signature is Valid." in lines
    assert "Signature Type: ETSI.CAdES.detached" in lines
    witness = run(async_pyhanko_report(documents[level], trust.root_der))
    assert witness.status.bottom_line and witness.level == level


def test_the_report_round_trips_as_plain_json(trust: Trust, documents: dict[str, Path]) -> None:
    report = validate(trust, documents["B-LTA"])
    data = json.loads(report.to_json())
    assert data["signature_count"] == 1 and data["valid_count"] == 1
    assert data["indication"] == "TOTAL-PASSED" and data["policy"].startswith("eid-pades-1")
    assert data["signatures"][0]["level"] == "B-LTA"
    assert DocumentReport.from_dict(data) == report


def test_our_certificates_need_revocation_data(trust: Trust, documents: dict[str, Path]) -> None:
    """B-B carries no revocation data; without our responder the rule is a hard fail."""
    report = validate(trust, documents["B-B"], with_revocation=False)
    signature = report.signatures[0]
    assert signature.indication is Indication.INDETERMINATE
    assert "revocation" in signature.caught_by
    assert signature.revocation is not None and signature.revocation.status == "not checked"
    # B-LT carries its own: no responder needed.
    assert validate(trust, documents["B-LT"], with_revocation=False).indication is Indication.TOTAL_PASSED


def test_no_personal_code_reaches_the_logs(
    trust: Trust, documents: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    report = validate(trust, documents["B-B"], with_revocation=False)
    assert report.signatures[0].personal_code == "49403136526"  # in the report, fine
    assert caplog.records, "pyHanko logs its path-validation warning"
    text = caplog.text + "".join(str(record.exc_info) for record in caplog.records)
    assert "49403136526" not in text


def test_a_revoked_signer_is_reported_revoked(service_env: ServiceEnv, trust: Trust, tmp_path: Path) -> None:
    citizen = issue_citizen(service_env, Purpose.SIGNING)
    signed = sign(trust, citizen, make_pdf(tmp_path / "in.pdf"), tmp_path / "signed.pdf", Level.B_B)
    assert validate(trust, signed).indication is Indication.TOTAL_PASSED
    with Session(service_env.engine) as session:
        revoke_certificate(session, trust.keystore, trust.pki, citizen.record.serial)
    # B-B: nothing proves the signature is older than the revocation.
    signature = validate(trust, signed).signatures[0]
    assert (signature.indication, signature.sub_indication) == (Indication.INDETERMINATE, "REVOKED_NO_POE")
    assert signature.caught_by[-1] == "revocation"
    assert signature.revocation is not None and signature.revocation.status == "revoked"
    assert signature.revocation.revoked_at is not None
    # A content time stamp after the revocation proves the signature was made with a
    # revoked key (the service refuses to sign with it; pyHanko's signer does not ask).
    late = pyhanko_sign(
        make_pdf(tmp_path / "late.pdf"), tmp_path / "late-signed.pdf", simple_signer(citizen, trust),
        field="Late", timestamper=trust.timestamper(),
    )  # fmt: skip
    signature = validate(trust, late).signatures[0]
    assert (signature.indication, signature.sub_indication) == (Indication.TOTAL_FAILED, "REVOKED"), signature
    assert signature.caught_by[-1] == "revocation"


def test_a_self_made_ca_is_not_trusted_unless_the_operator_adds_it(trust: Trust, tmp_path: Path) -> None:
    forger = self_made_ca()
    signed = pyhanko_sign(make_pdf(tmp_path / "in.pdf"), tmp_path / "forged.pdf", forger.signer, field="Sig1")
    signature = validate(trust, signed).signatures[0]
    assert (signature.indication, signature.sub_indication) == (
        Indication.INDETERMINATE,
        "NO_CERTIFICATE_CHAIN_FOUND",
    )
    assert signature.caught_by == ("certificate_chain",)
    assert signature.errors and "trusted root" in signature.errors[0]
    # An operator who trusts that CA puts it in the anchor folder.
    folder = tmp_path / "anchors"
    folder.mkdir()
    (folder / "partner-ca.pem").write_bytes(forger.ca_pem)
    (folder / "notes.txt").write_text("ignored: not a certificate suffix")
    config = trust_config(trust, anchor_folder=folder)
    assert len(config.extra_anchors) == 1
    report = run(async_validate_document(signed, trust=config, revocation=provider(trust)))
    assert report.indication is Indication.TOTAL_PASSED, report.to_json()
    assert report.signatures[0].signer_name == "Mallory Forger"
    assert any("not checked" in warning for warning in report.signatures[0].warnings)


def test_bad_trust_configuration_is_refused(tmp_path: Path, trust: Trust) -> None:
    (tmp_path / "bad.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(TrustConfigurationError):
        build_trust((trust.root_der,), anchor_folder=tmp_path)
    with pytest.raises(TrustConfigurationError):
        build_trust((trust.root_der,), anchor_folder=tmp_path / "missing")


def test_a_trusted_list_adds_its_granted_services(tmp_path: Path) -> None:
    import base64

    forger, other = self_made_ca(), self_made_ca()
    from asn1crypto import pem

    def service(cert_pem: bytes, status: str) -> str:
        der = pem.unarmor(cert_pem)[2]
        return f"""<TSPService><ServiceInformation>
          <ServiceStatus>http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/{status}</ServiceStatus>
          <ServiceDigitalIdentity><DigitalId><X509Certificate>{base64.b64encode(der).decode()}</X509Certificate>
          </DigitalId></ServiceDigitalIdentity></ServiceInformation></TSPService>"""

    xml = f"""<?xml version="1.0"?>
    <TrustServiceStatusList xmlns="http://uri.etsi.org/02231/v2#"><TrustServiceProviderList>
      <TrustServiceProvider><TSPServices>{service(forger.ca_pem, "granted")}{service(other.ca_pem, "withdrawn")}
      </TSPServices></TrustServiceProvider></TrustServiceProviderList></TrustServiceStatusList>"""
    path = tmp_path / "tl.xml"
    path.write_text(xml)
    assert load_trusted_list(path) == [pem.unarmor(forger.ca_pem)[2]]
    (tmp_path / "broken.xml").write_text("<not xml")
    with pytest.raises(TrustConfigurationError):
        load_trusted_list(tmp_path / "broken.xml")
