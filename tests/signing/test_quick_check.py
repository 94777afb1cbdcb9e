"""The quick certificate check of B-B and B-T signatures refuses what the full path refuses.

B-B and B-T check the chain above the signer once per root CRL and the signer's own
fresh OCSP answer on every signature (``signing/_signer_check.py``); B-LT and B-LTA keep
pyhanko-certvalidator's full path. Each test signs with the real trust services and
looks at what a refusal says and that nothing was written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.services import Services
from api.signing_flow import revocation_source
from keys.issuance import Purpose
from keys.keystore import HashAlgorithm
from keys.models import utcnow
from keys.ocsp import OcspResponder
from keys.revocation import revoke_certificate
from signing import (
    InProcessRevocation,
    Level,
    Prepared,
    SignerCertificateRejected,
    TrustServiceUnavailable,
    _signer_check,
    pades,
)
from tests.conftest import IssuedCitizen, ServiceEnv, issue_citizen
from tests.signing.conftest import Trust, issue_signing_certificate, make_pdf, run, sign_digest
from tests.signing.witnesses import async_pyhanko_report, pdfsig

QUICK = [Level.B_B, Level.B_T]


def _prepare(
    trust: Trust, der: bytes, tmp_path: Path, level: Level, chain: list[bytes] | None = None
) -> Prepared:
    source = tmp_path / "in.pdf"
    if not source.exists():
        make_pdf(source)
    return trust.prepare(
        source, tmp_path / "work", der, level=level, chain=trust.chain if chain is None else chain
    )


def _finish(
    trust: Trust, prepared: Prepared, signature: bytes, out: Path, source: InProcessRevocation | None = None
) -> Path:
    return trust.finish(prepared, signature, out, validation=source or trust.revocation())


def _sign(
    trust: Trust, citizen: IssuedCitizen, tmp_path: Path, level: Level, name: str, **kwargs: object
) -> Path:
    prepared = _prepare(trust, citizen.der, tmp_path, level)
    return _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / name, **kwargs)  # type: ignore[arg-type]


def _written(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.is_file() and p.name != "in.pdf")


@pytest.mark.parametrize("level", QUICK, ids=[level.value for level in QUICK])
def test_quick_levels_are_valid_for_the_witnesses(
    trust: Trust,
    signers: dict[str, IssuedCitizen],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    level: Level,
) -> None:
    """B-B and B-T do not run pyhanko-certvalidator for the signer, and the result is
    still a valid signature at that level for pyHanko's own validator."""

    def full_path(*args: object) -> None:
        raise AssertionError("the full path was taken")

    monkeypatch.setattr(pades, "async_validate_signer", full_path)
    out = _sign(trust, signers["p256"], tmp_path, level, "out.pdf")
    monkeypatch.undo()
    checked = run(async_pyhanko_report(out, trust.root_der))
    assert checked.status.bottom_line and checked.level == level.value


@pytest.mark.parametrize("level", QUICK, ids=[level.value for level in QUICK])
@pytest.mark.parametrize("by_status", [False, True], ids=["ocsp", "status"])
def test_signer_revoked_after_a_signature_is_refused_on_the_next(
    trust: Trust, tmp_path: Path, level: Level, by_status: bool
) -> None:
    """Through an OCSP answer, or through the status rows the answer is made from."""
    source = trust.revocation_by_status() if by_status else trust.revocation()
    citizen = issue_citizen(trust.env, Purpose.SIGNING)
    assert _sign(trust, citizen, tmp_path, level, "first.pdf", source=source).exists()
    prepared = _prepare(trust, citizen.der, tmp_path, level)
    revoke_certificate(trust.session, trust.keystore, trust.pki, citizen.record.serial)
    with pytest.raises(SignerCertificateRejected, match="revoked"):
        _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / "second.pdf", source=source)
    assert _written(tmp_path) == ["first.pdf"]


def test_the_status_read_replaces_the_ocsp_answer_only_where_none_is_embedded(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path
) -> None:
    """With ``signer_status`` B-B asks the responder nothing; B-LT still embeds an answer."""
    asked: list[bytes] = []

    def ask(der: bytes) -> bytes:
        asked.append(der)
        return trust.ocsp.respond(der, now=utcnow()).der

    source = dataclasses.replace(trust.revocation_by_status(), ask_ocsp=ask)
    out = _sign(trust, signers["p256"], tmp_path, Level.B_B, "bb.pdf", source=source)
    assert asked == []
    assert "Signature Validation: Signature is Valid." in pdfsig(nss_db, out)[0]
    _sign(trust, signers["p256"], tmp_path, Level.B_LT, "lt.pdf", source=source)
    assert len(asked) == 1


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        ("unknown", TrustServiceUnavailable, "no revocation data for the signer's certificate"),
        ("on hold?", TrustServiceUnavailable, "no revocation data for the signer's certificate"),
        (None, TrustServiceUnavailable, "status is not available"),
    ],
    ids=["unknown", "unexpected", "unreadable"],
)
def test_a_status_that_is_not_good_is_refused(
    trust: Trust,
    signers: dict[str, IssuedCitizen],
    tmp_path: Path,
    status: str | None,
    error: type[Exception],
    message: str,
) -> None:
    def read(issuer: bytes, serial: int) -> str:
        if status is None:
            raise OSError("database is locked")
        return status

    source = dataclasses.replace(trust.revocation(), signer_status=read)
    prepared = _prepare(trust, signers["p256"].der, tmp_path, Level.B_B)
    with pytest.raises(error, match=message):
        _finish(trust, prepared, sign_digest(signers["p256"], prepared), tmp_path / "out.pdf", source=source)
    assert _written(tmp_path) == []


def _other_ca(subject: x509.Name) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _signer_from(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> IssuedCitizen:
    """A signing certificate (nonRepudiation) from a CA that is not ours."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MÄNNIK,MARI-LIIS,49403136526")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=10))
        .add_extension(
            x509.KeyUsage(False, True, False, False, False, False, False, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    return IssuedCitizen(record=None, private_key=key, der=cert.public_bytes(serialization.Encoding.DER))  # type: ignore[arg-type]


@pytest.mark.parametrize("level", QUICK, ids=[level.value for level in QUICK])
@pytest.mark.parametrize("impostor", [False, True], ids=["other-ca", "same-name-as-ours"])
def test_certificate_from_another_ca_is_refused(
    trust: Trust, tmp_path: Path, level: Level, impostor: bool
) -> None:
    """A CA of its own, or one that copies our Citizen CA's name (its signature gives it away)."""
    ours = x509.load_der_x509_certificate(bytes(trust.pki.citizen_ca.certificate.dump())).subject
    name = ours if impostor else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Somebody Else's CA")])
    ca_key, ca = _other_ca(name)
    citizen = _signer_from(ca_key, ca)
    prepared = _prepare(
        trust, citizen.der, tmp_path, level, chain=[ca.public_bytes(serialization.Encoding.DER)]
    )
    with pytest.raises(SignerCertificateRejected, match="not a trusted root|not one of ours|does not chain"):
        _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / "out.pdf")
    assert _written(tmp_path) == []


@pytest.mark.parametrize("level", QUICK, ids=[level.value for level in QUICK])
def test_expired_certificate_is_refused(trust: Trust, tmp_path: Path, level: Level) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = issue_signing_certificate(
        trust, key.public_key(), now=utcnow() - timedelta(days=3), lifetime=timedelta(days=1)
    )
    citizen = IssuedCitizen(record=None, private_key=key, der=der)  # type: ignore[arg-type]
    prepared = _prepare(trust, citizen.der, tmp_path, level)
    with pytest.raises(SignerCertificateRejected, match="not valid now"):
        _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / "out.pdf")
    assert _written(tmp_path) == []


def test_authentication_certificate_may_not_sign(trust: Trust, tmp_path: Path) -> None:
    """The authentication key's certificate has digitalSignature, not nonRepudiation."""
    citizen = issue_citizen(trust.env, Purpose.AUTHENTICATION)
    prepared = _prepare(trust, citizen.der, tmp_path, Level.B_B)
    with pytest.raises(SignerCertificateRejected, match="may not be used for this.*non repudiation"):
        _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / "out.pdf")


def _revoked_ca_crl(trust: Trust) -> bytes:
    """The root's current CRL with the Citizen CA added, signed by the root's key."""
    current = next(
        der
        for der in trust.current_crls()
        if asn1_crl.CertificateList.load(der).issuer == trust.pki.root.certificate.subject
    )
    parsed = asn1_crl.CertificateList.load(current)
    tbs = parsed["tbs_cert_list"].copy()
    entries = [entry.copy() for entry in tbs["revoked_certificates"] or []]
    entries.append(
        asn1_crl.RevokedCertificate(
            {
                "user_certificate": trust.pki.citizen_ca.certificate.serial_number,
                "revocation_date": asn1_x509.Time({"utc_time": datetime.now(UTC).replace(microsecond=0)}),
                "crl_entry_extensions": [
                    {"extn_id": "crl_reason", "critical": False, "extn_value": "ca_compromise"}
                ],
            }
        )
    )
    tbs["revoked_certificates"] = entries
    hash_algorithm = HashAlgorithm(parsed["signature_algorithm"].hash_algo)
    signature = trust.keystore.sign(trust.pki.root.key_id, tbs.dump(), hash_algorithm=hash_algorithm)
    return bytes(
        asn1_crl.CertificateList(
            {
                "tbs_cert_list": tbs,
                "signature_algorithm": parsed["signature_algorithm"],
                "signature": signature,
            }
        ).dump()
    )


@pytest.mark.parametrize("level", QUICK, ids=[level.value for level in QUICK])
def test_a_new_crl_revoking_the_ca_is_seen_at_once(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path, level: Level
) -> None:
    citizen = signers["p256"]
    crls: list[Callable[[], list[bytes]]] = [trust.current_crls]
    source = dataclasses.replace(trust.revocation(), crls=lambda: crls[0]())
    assert _sign(trust, citizen, tmp_path, level, "before.pdf", source=source).exists()
    revoked = _revoked_ca_crl(trust)
    crls[0] = lambda: [revoked if _is_root_crl(trust, der) else der for der in trust.current_crls()]
    prepared = _prepare(trust, citizen.der, tmp_path, level)
    with pytest.raises(SignerCertificateRejected, match="issuing CA's certificate is revoked"):
        _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / "during.pdf", source=source)
    # The same CRL, asked again: still refused (a refusal is never remembered as good).
    with pytest.raises(SignerCertificateRejected, match="revoked"):
        _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / "during.pdf", source=source)
    crls[0] = trust.current_crls
    assert _finish(
        trust, prepared, sign_digest(citizen, prepared), tmp_path / "after.pdf", source=source
    ).exists()
    assert _written(tmp_path) == ["after.pdf", "before.pdf"]


def _is_root_crl(trust: Trust, der: bytes) -> bool:
    return bool(asn1_crl.CertificateList.load(der).issuer == trust.pki.root.certificate.subject)


@pytest.mark.parametrize("level", [Level.B_B, Level.B_LT], ids=["quick", "full"])
def test_unknown_to_the_responder_is_refused_as_by_the_full_path(
    trust: Trust, tmp_path: Path, level: Level
) -> None:
    """An OCSP "unknown" (the responder has no record): no usable revocation data, on
    both paths."""
    citizen = issue_citizen(trust.env, Purpose.SIGNING)
    prepared = _prepare(trust, citizen.der, tmp_path, level)
    pki = trust.pki
    ocsp = OcspResponder(
        issuer=pki.citizen_ca, signer=pki.ocsp_responder, keystore=trust.keystore, lookup=lambda serial: None
    )
    source = dataclasses.replace(trust.revocation(), ask_ocsp=lambda der: ocsp.respond(der, now=utcnow()).der)
    with pytest.raises(TrustServiceUnavailable, match="no revocation data for the signer's certificate"):
        _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / "out.pdf", source=source)
    assert _written(tmp_path) == []


def test_an_old_ocsp_answer_is_not_accepted(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    """Every signature gets its own answer: one kept from an earlier request (another
    nonce) does not count, nor does one from another responder key."""
    citizen = signers["p384"]
    kept: list[bytes] = []

    def replay(der: bytes) -> bytes:
        if not kept:
            kept.append(trust.ocsp.respond(der, now=utcnow()).der)
        return kept[0]

    source = dataclasses.replace(trust.revocation(), ask_ocsp=replay)
    assert _sign(trust, citizen, tmp_path, Level.B_B, "first.pdf", source=source).exists()
    prepared = _prepare(trust, citizen.der, tmp_path, Level.B_B)
    with pytest.raises(TrustServiceUnavailable, match="no revocation data"):
        _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / "second.pdf", source=source)
    assert _written(tmp_path) == ["first.pdf"]


def test_the_chain_is_validated_again_after_the_bound(
    trust: Trust, signers: dict[str, IssuedCitizen], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within ``CHAIN_MEMO_LIFETIME`` and with the same CRL, the CA is validated once;
    after it, again."""
    calls: list[str] = []
    real = _signer_check.validate_job

    async def counting(job: object, whose: str) -> object:
        calls.append(whose)
        return await real(job, whose)  # type: ignore[arg-type]

    monkeypatch.setattr(_signer_check, "validate_job", counting)
    _signer_check.forget()
    source = trust.revocation()
    cert = asn1_x509.Certificate.load(signers["p256"].der)
    start = datetime.now(UTC)
    for moment in (start, start + timedelta(minutes=1), start + _signer_check.CHAIN_MEMO_LIFETIME):
        run(_signer_check.async_check_signer(source, cert, now=moment))
    assert calls == ["issuing CA's", "issuing CA's"]


def test_the_root_crls_alone_when_the_source_offers_them(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path
) -> None:
    """``root_crls`` spares the quick check the Citizen CA's CRL; the full path still
    takes every CRL, and a root CRL missing from it is a refusal, not a pass."""
    asked: list[str] = []

    def every_crl() -> list[bytes]:
        asked.append("all")
        return trust.current_crls()

    def root_crls() -> list[bytes]:
        asked.append("root")
        return trust.current_crls()[:1]

    source = dataclasses.replace(trust.revocation(), crls=every_crl, root_crls=root_crls)
    out = _sign(trust, signers["p256"], tmp_path, Level.B_B, "out.pdf", source=source)
    assert asked == ["root"]
    assert "Signature Validation: Signature is Valid." in pdfsig(nss_db, out)[0]
    out = _sign(trust, signers["p256"], tmp_path, Level.B_LT, "lt.pdf", source=source)
    assert "all" in asked[1:]

    wrong = dataclasses.replace(source, root_crls=lambda: trust.current_crls()[1:])
    with pytest.raises(TrustServiceUnavailable, match="CRL"):
        _sign(trust, signers["p256"], tmp_path, Level.B_B, "none.pdf", source=wrong)
    assert not (tmp_path / "none.pdf").exists()


def test_the_service_reads_the_status_of_our_citizen_ca_alone(
    trust: Trust, service_env: ServiceEnv, tmp_path: Path
) -> None:
    """``api.signing_flow.revocation_source``: the signer's status from the service's own
    responder, at once after a revocation; nothing for another issuer's serial."""
    services = Services.start(service_env.settings)
    try:
        source = revocation_source(services)
        assert source.signer_status is not None
        citizen = issue_citizen(trust.env, Purpose.SIGNING)
        serial = citizen.record.serial
        ca = bytes(trust.pki.citizen_ca.certificate.dump())
        assert source.signer_status(ca, int(serial, 16)) == "good"
        assert source.signer_status(trust.root_der, int(serial, 16)) == "unknown"
        assert _sign(trust, citizen, tmp_path, Level.B_B, "first.pdf", source=source).exists()
        prepared = _prepare(trust, citizen.der, tmp_path, Level.B_B)
        revoke_certificate(trust.session, trust.keystore, trust.pki, serial)
        assert source.signer_status(ca, int(serial, 16)) == "revoked"
        with pytest.raises(SignerCertificateRejected, match="revoked"):
            _finish(trust, prepared, sign_digest(citizen, prepared), tmp_path / "second.pdf", source=source)
    finally:
        services.close()
