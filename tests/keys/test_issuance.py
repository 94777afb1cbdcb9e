"""Issuing citizen certificates: chains, proof of possession, crash-safe serials."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from asn1crypto import ocsp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlmodel import select

from keys.ca import CertState
from keys.errors import CertificateRequestRejected, KeyStoreUnavailable
from keys.issuance import Purpose, issue_citizen_certificate, verify_possession
from keys.keystore import KeyStore
from keys.models import CertificateRecord, utcnow
from keys.ocsp import OcspResponder, StatusRow
from keys.profiles import CitizenSubject
from tests import openssl
from tests.conftest import ServiceEnv, issue_citizen

SUBJECT = CitizenSubject(
    country="EE", given_name="Jaak-Kristjan", family_name="Jõeorg", personal_code="38001085718"
)


def _spki(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("purpose", list(Purpose))
@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["p256", "p384"])
def test_openssl_verifies_chain(
    service_env: ServiceEnv,
    pem_files: dict[str, Path],
    tmp_path: Path,
    purpose: Purpose,
    curve: ec.EllipticCurve,
) -> None:
    citizen = issue_citizen(service_env, purpose, subject=SUBJECT, curve=curve)
    cert = tmp_path / "c.pem"
    cert.write_bytes(citizen.pem)
    assert openssl.verify(cert, pem_files) == f"{cert}: OK"
    if purpose is Purpose.AUTHENTICATION:
        assert openssl.verify(cert, pem_files, "-purpose", "sslclient") == f"{cert}: OK"


def test_proof_of_possession_ec_and_rsa() -> None:
    challenge = b"challenge-from-the-service"
    ec_key = ec.generate_private_key(ec.SECP384R1())
    verify_possession(_spki(ec_key), challenge, ec_key.sign(challenge, ec.ECDSA(hashes.SHA384())))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    verify_possession(_spki(rsa_key), challenge, rsa_key.sign(challenge, padding.PKCS1v15(), hashes.SHA256()))


def test_proof_of_possession_rejects_other_key_or_challenge() -> None:
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    signature = other.sign(b"c", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(CertificateRequestRejected, match="proof of possession"):
        verify_possession(_spki(key), b"c", signature)
    with pytest.raises(CertificateRequestRejected, match="proof of possession"):
        verify_possession(_spki(key), b"other", key.sign(b"c", ec.ECDSA(hashes.SHA256())))
    with pytest.raises(CertificateRequestRejected, match="proof of possession"):
        verify_possession(_spki(key), b"c", b"\x30\x00garbage")


@pytest.mark.parametrize(
    "spki",
    [
        b"not a key",
        _spki(ec.generate_private_key(ec.SECP521R1())),
        _spki(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
    ],
    ids=["garbage", "p521", "rsa1024"],
)
def test_unacceptable_keys_are_refused_before_anything_is_written(
    service_env: ServiceEnv, spki: bytes
) -> None:
    session, keystore, pki = service_env.open()
    try:
        before = len(session.exec(select(CertificateRecord)).all())
        with pytest.raises(CertificateRequestRejected):
            issue_citizen_certificate(
                session, keystore, pki, subject=SUBJECT, purpose=Purpose.SIGNING, public_key_der=spki
            )
        assert len(session.exec(select(CertificateRecord)).all()) == before
    finally:
        session.close()
        keystore.close()


class _CrashingKeyStore(KeyStore):
    """Delegates everything but fails the signature, like a crash mid-issuance."""

    def __init__(self, inner: KeyStore) -> None:
        self._inner = inner

    def create_key(self, key_id, algorithm):  # type: ignore[no-untyped-def]
        return self._inner.create_key(key_id, algorithm)

    def key_info(self, key_id):  # type: ignore[no-untyped-def]
        return self._inner.key_info(key_id)

    def list_keys(self):  # type: ignore[no-untyped-def]
        return self._inner.list_keys()

    def sign(self, key_id, data, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyStoreUnavailable("token removed")

    def check(self) -> None:
        self._inner.check()


def test_crash_mid_issuance_leaves_a_reserved_serial_answered_as_revoked(service_env: ServiceEnv) -> None:
    session, keystore, pki = service_env.open()
    try:
        with pytest.raises(KeyStoreUnavailable):
            issue_citizen_certificate(
                session,
                _CrashingKeyStore(keystore),
                pki,
                subject=SUBJECT,
                purpose=Purpose.SIGNING,
                public_key_der=_spki(ec.generate_private_key(ec.SECP256R1())),
            )
        session.rollback()
        reserved = session.exec(
            select(CertificateRecord).where(CertificateRecord.state == CertState.RESERVED.value)
        ).all()
        assert reserved, "the intent must be recorded before signing"
        row = reserved[-1]
        assert row.der is None
        lookup = {row.serial: StatusRow(state=row.state, revoked_at=None, reason=None, revision=row.revision)}
        responder = OcspResponder(
            issuer=pki.citizen_ca, signer=pki.ocsp_responder, keystore=keystore, lookup=lookup.get
        )
        cert_id = ocsp.CertId(
            {
                "hash_algorithm": {"algorithm": "sha256"},
                "issuer_name_hash": hashlib.sha256(pki.citizen_ca.subject.dump()).digest(),
                "issuer_key_hash": hashlib.sha256(
                    pki.citizen_ca.certificate.public_key["public_key"].contents[1:]
                ).digest(),
                "serial_number": int(row.serial, 16),
            }
        )
        request = ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": cert_id}]}})
        answer = responder.respond(request.dump(), now=utcnow())
        basic = ocsp.OCSPResponse.load(answer.der).basic_ocsp_response
        single = basic["tbs_response_data"]["responses"][0]
        assert single["cert_status"].name == "revoked"
        assert single["cert_status"].chosen["revocation_reason"].native == "certificate_hold"
        extensions = [e["extn_id"].native for e in basic["tbs_response_data"]["response_extensions"]]
        assert "extended_revoke" in extensions
    finally:
        session.close()
        keystore.close()


def test_serials_are_unique_and_at_least_64_random_bits(service_env: ServiceEnv) -> None:
    serials = [issue_citizen(service_env).record.serial for _ in range(5)]
    assert len(set(serials)) == 5
    assert all(int(s, 16).bit_length() >= 64 for s in serials)


def test_init_renews_a_service_certificate_issued_under_an_older_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlmodel import Session

    from api.services import init_service
    from keys import pki as pki_module
    from tests.conftest import make_env

    env = make_env(tmp_path / "data", "http://127.0.0.1:9")
    first = init_service(env.settings)
    assert init_service(env.settings).qr_seal.key_id == first.qr_seal.key_id  # idempotent

    # Pretend the profile now wants a key usage the current certificate lacks.
    changed = {**pki_module._KEY_USAGE, pki_module.Profile.QR_SEAL: {"digital_signature", "key_agreement"}}
    monkeypatch.setattr(pki_module, "_KEY_USAGE", changed)
    renewed = init_service(env.settings)
    assert renewed.qr_seal.key_id != first.qr_seal.key_id
    assert renewed.tsa.key_id == first.tsa.key_id and renewed.root.signer.key_id == first.root.signer.key_id
    with Session(env.engine) as session:
        assert session.exec(
            select(CertificateRecord).where(CertificateRecord.key_id == first.qr_seal.key_id)
        ).one()
