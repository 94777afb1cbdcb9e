"""Every level with both curves, checked by pdfsig, openssl cms and pyHanko's validator."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest
from asn1crypto import cms, x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from pyhanko_certvalidator.authority import AuthorityWithCert
from pyhanko_certvalidator.fetchers.common_utils import format_ocsp_request

from keys.models import utcnow
from signing import (
    Level,
    Prepared,
    SigningError,
    TrustServiceUnavailable,
    ValidationData,
    async_prepare,
)
from tests.conftest import IssuedCitizen
from tests.signing.conftest import Trust, issue_signing_certificate, make_pdf, run, sign_digest
from tests.signing.witnesses import async_pyhanko_report, openssl_cms_verify, pdfsig

LEVELS = [Level.B_B, Level.B_T, Level.B_LT, Level.B_LTA]


def prepare_and_finish(
    trust: Trust, citizen: IssuedCitizen, tmp_path: Path, level: Level, *, round_trip: bool = True
) -> tuple[Prepared, Path]:
    prepared = trust.prepare(make_pdf(tmp_path / "in.pdf"), tmp_path / "work", citizen.der, level=level)
    assert isinstance(prepared, Prepared)
    # As the service does it: the state goes to the database, another instance finishes.
    stored = Prepared.from_bytes(prepared.to_bytes()) if round_trip else prepared
    out = tmp_path / "out.pdf"
    assert trust.finish(stored, sign_digest(citizen, stored), out) == out
    return prepared, out


@pytest.mark.parametrize("curve", ["p256", "p384"])
@pytest.mark.parametrize("level", LEVELS, ids=[level.value for level in LEVELS])
def test_level_is_accepted_by_every_witness(
    trust: Trust,
    signers: dict[str, IssuedCitizen],
    nss_db: str,
    root_pem: Path,
    tmp_path: Path,
    level: Level,
    curve: str,
) -> None:
    citizen = signers[curve]
    prepared, out = prepare_and_finish(trust, citizen, tmp_path, level)
    assert prepared.hash_algorithm.value == {"p256": "sha256", "p384": "sha384"}[curve]
    assert (
        prepared.digest_to_sign
        == hashlib.new(prepared.hash_algorithm.value, prepared.signed_attributes).digest()
    )
    attributes = cms.CMSAttributes.load(prepared.signed_attributes)
    assert [attr["type"].native for attr in attributes] == [
        "content_type",
        "message_digest",
        "signing_certificate_v2",
    ]

    report = pdfsig(nss_db, out)
    ours = report[0]
    assert "Signature Validation: Signature is Valid." in ours
    assert "Certificate Validation: Certificate is Trusted." in ours
    assert "Signature Type: ETSI.CAdES.detached" in ours
    assert f"Signing Hash Algorithm: {prepared.hash_algorithm.value.upper().replace('SHA', 'SHA-')}" in ours
    # The last signature covers the whole file: ours for B-B/B-T, the document time
    # stamp for B-LTA. At B-LT the DSS is an update after the only signature.
    if level in (Level.B_B, Level.B_T):
        assert len(report) == 1 and "Total document signed" in ours
    elif level is Level.B_LT:
        assert len(report) == 1 and "Not total document signed" in ours
    else:
        assert len(report) == 2 and "Total document signed" in report[1]
        assert "Signer Certificate Common Name: EID Demo Authority Time-Stamping Unit" in report[1]

    assert "CMS Verification successful" in openssl_cms_verify(out, root_pem, tmp_path)

    checked = run(async_pyhanko_report(out, trust.root_der))
    status = checked.status
    assert status.intact and status.valid and status.trusted and status.bottom_line
    # PAdES: the claimed time is /M of the signature dictionary, not a signed attribute.
    assert status.signer_reported_dt == prepared.signing_time.replace(microsecond=0)
    assert checked.level == level.value
    # One OCSP response (the signer's, from our responder) and one CRL (the root's, for
    # the Citizen CA and the TSA); the OCSP responder's certificate has ocsp-nocheck.
    expected = (1, 1) if level.has_validation_data else (0, 0)
    assert (checked.dss_ocsps, checked.dss_crls) == expected
    assert checked.document_timestamps == (1 if level is Level.B_LTA else 0)


def test_prepared_state_is_plain_json_for_a_database_row(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    prepared, _ = prepare_and_finish(trust, signers["p256"], tmp_path, Level.B_B)
    body = json.loads(prepared.to_bytes())
    assert body["level"] == "B-B" and body["hash_algorithm"] == "sha256" and body["v"] == 2
    assert Prepared.from_bytes(prepared.to_bytes()) == prepared
    # Finishing leaves the prepared file as it was, so a retry can finish it again.
    assert prepared.prepared_path.stat().st_size == prepared.prepared_size
    assert sorted(p.name for p in prepared.prepared_path.parent.iterdir()) == [prepared.prepared_path.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.pdf", "out.pdf", "work"]


def test_rsa_signing_key(trust: Trust, nss_db: str, tmp_path: Path) -> None:
    """The protocol allows RSA signing keys: PKCS#1 v1.5 over the SHA-256 digest."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = issue_signing_certificate(trust, key.public_key())
    prepared = trust.prepare(make_pdf(tmp_path / "in.pdf"), tmp_path / "work", der, level=Level.B_LTA)
    assert prepared.hash_algorithm.value == "sha256"
    signature = key.sign(prepared.digest_to_sign, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    out = trust.finish(prepared, signature, tmp_path / "out.pdf")
    report = pdfsig(nss_db, out)[0]
    assert "Signature Validation: Signature is Valid." in report
    assert "Certificate Validation: Certificate is Trusted." in report
    assert run(async_pyhanko_report(out, trust.root_der)).level == "B-LTA"


def test_validation_data_given_as_it_is(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    """Instead of a source, the caller may hand over the OCSP response and CRLs itself."""
    citizen = signers["p384"]
    issuer = trust.pki.citizen_ca.certificate
    request = format_ocsp_request(
        x509.Certificate.load(citizen.der),
        AuthorityWithCert(issuer),
        certid_hash_algo="sha256",
        request_nonces=False,
    )
    data = ValidationData(
        trust_roots=(trust.root_der,),
        certificates=(bytes(issuer.dump()), bytes(trust.pki.tsa.certificate.dump())),
        ocsp_responses=(trust.ocsp.respond(request.dump(), now=utcnow()).der,),
        crls=tuple(trust.current_crls()),
    )
    prepared = trust.prepare(make_pdf(tmp_path / "in.pdf"), tmp_path / "work", citizen.der, level=Level.B_LT)
    out = trust.finish(prepared, sign_digest(citizen, prepared), tmp_path / "out.pdf", validation=data)
    checked = run(async_pyhanko_report(out, trust.root_der))
    # Both CRLs were handed over, so both are embedded.
    assert (checked.level, checked.dss_ocsps, checked.dss_crls) == ("B-LT", 1, 2)
    # With only the root's CRL, nothing covers the signer's certificate: no B-LT.
    bare = ValidationData(trust_roots=data.trust_roots, certificates=data.certificates, crls=data.crls[:1])
    with pytest.raises(TrustServiceUnavailable, match="no revocation data"):
        trust.finish(prepared, sign_digest(citizen, prepared), tmp_path / "again.pdf", validation=bare)
    assert not (tmp_path / "again.pdf").exists()


def test_unwritable_places_are_a_server_error(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    citizen = signers["p256"]
    source = make_pdf(tmp_path / "in.pdf")
    with pytest.raises(SigningError) as caught:
        run(async_prepare(source, tmp_path / "missing", signer_certificate=citizen.der, chain=trust.chain))
    assert type(caught.value) is SigningError and caught.value.status == 500 and not caught.value.public
    prepared = trust.prepare(source, tmp_path / "work", citizen.der, level=Level.B_B)
    with pytest.raises(SigningError) as caught:
        trust.finish(
            prepared, sign_digest(citizen, prepared), tmp_path / "missing" / "out.pdf", timestamper=None
        )
    assert type(caught.value) is SigningError


def test_nothing_fetches_a_url(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The certificates name http:// OCSP, CRL and CA URLs; a B-LTA signature is made
    without resolving or connecting to anything."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    _, out = prepare_and_finish(trust, signers["p256"], tmp_path, Level.B_LTA)
    monkeypatch.undo()
    assert run(async_pyhanko_report(out, trust.root_der)).level == "B-LTA"


def test_a_version_1_state_still_finishes(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path
) -> None:
    """States saved before format version 2 (the whole document in the prepared file,
    no source) are still finished: the same document, as one file."""
    citizen = signers["p256"]
    workdir = tmp_path / "work"
    prepared = trust.prepare(make_pdf(tmp_path / "in.pdf"), workdir, citizen.der, level=Level.B_T)
    assert prepared.source_path is not None
    whole = workdir / "whole.pdf"
    whole.write_bytes(prepared.source_path.read_bytes() + prepared.prepared_path.read_bytes())
    body = json.loads(prepared.to_bytes())
    del body["source"]
    body.update(v=1, prepared_path=str(whole), prepared_size=whole.stat().st_size)
    old = Prepared.from_bytes(json.dumps(body).encode())
    assert old.source_path is None and old.document_size == prepared.document_size
    assert json.loads(old.to_bytes())["v"] == 1
    out = trust.finish(old, sign_digest(citizen, old), tmp_path / "out.pdf")
    report = pdfsig(nss_db, out)[0]
    assert "Signature Validation: Signature is Valid." in report and "Total document signed" in report
