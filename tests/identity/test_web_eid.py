"""Web eID authentication tokens and the OCSP client they use for revocation.

Tokens are made like the Web eID app makes them: a certificate from our own Citizen CA,
a signature over ``H(origin) || H(nonce)`` (raw r||s for ECDSA). Revocation is asked of
our real OCSP responder, in process, through ``identity.ocsp_client``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlmodel import Session, select

from identity.errors import WebEidRejected
from identity.ocsp_client import build_ocsp_request, ocsp_status
from identity.web_eid import REQUIRED_FIELDS, WebEidIdentity, validate_auth_token
from keys.issuance import Purpose, issue_citizen_certificate
from keys.models import CertificateRecord
from keys.ocsp import OcspResponder, StatusRow
from keys.profiles import CitizenSubject
from tests.conftest import IssuedCitizen, ServiceEnv, issue_citizen

ORIGIN = "https://example.org"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def new_nonce(size: int = 32) -> str:
    return b64(secrets.token_bytes(size))


def sign(key: PrivateKey, algorithm: str, *, origin: str, nonce: str, raw: bool = True) -> bytes:
    """What the Web eID app does: sign H(origin) || H(nonce), ECDSA as raw r||s."""
    chosen = _HASHES[algorithm[2:]]()
    data = (
        hashlib.new(chosen.name, origin.encode()).digest() + hashlib.new(chosen.name, nonce.encode()).digest()
    )
    if isinstance(key, rsa.RSAPrivateKey):
        if algorithm.startswith("PS"):
            pss = padding.PSS(mgf=padding.MGF1(chosen), salt_length=chosen.digest_size)
            return key.sign(data, pss, chosen)
        return key.sign(data, padding.PKCS1v15(), chosen)
    der = key.sign(data, ec.ECDSA(chosen))
    if not raw:
        return der
    size = (key.curve.key_size + 7) // 8
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def make_token(
    key: PrivateKey,
    cert_der: bytes,
    nonce: str,
    *,
    algorithm: str = "ES256",
    origin: str = ORIGIN,
    format: str = "web-eid:1.0",
    raw: bool = True,
    **extra: object,
) -> dict[str, Any]:
    return {
        "unverifiedCertificate": b64(cert_der),
        "algorithm": algorithm,
        "signature": b64(sign(key, algorithm, origin=origin, nonce=nonce, raw=raw)),
        "format": format,
        "appVersion": "https://web-eid.eu/web-eid-app/releases/2.6.0+0",
        **extra,
    }


@dataclass
class Ctx:
    """Everything a validation needs, with a real OCSP revocation check."""

    root_der: bytes
    ca_der: bytes
    responder: OcspResponder
    revocation_calls: list[tuple[bytes, bytes]]

    def check_revocation(self, now: datetime) -> Callable[[bytes, bytes], None]:
        def check(cert_der: bytes, issuer_der: bytes) -> None:
            self.revocation_calls.append((cert_der, issuer_der))
            response = self.responder.respond(build_ocsp_request(cert_der, issuer_der), now=now).der
            status = ocsp_status(response, cert_der, issuer_der, [], now)
            if status != "good":
                raise WebEidRejected(f"the certificate is {status} according to OCSP")

        return check

    def validate(
        self,
        token: object,
        nonce: str,
        *,
        origin: str = ORIGIN,
        now: datetime | None = None,
        trust_anchors: list[bytes] | None = None,
    ) -> WebEidIdentity:
        when = now or datetime.now(UTC)
        return validate_auth_token(
            token,
            origin=origin,
            nonce=nonce,
            trust_anchors=[self.root_der] if trust_anchors is None else trust_anchors,
            intermediates=[self.ca_der],
            check_revocation=self.check_revocation(when),
            now=when,
        )


@pytest.fixture(scope="module")
def ctx_base(service_env: ServiceEnv) -> Iterator[Ctx]:
    session, keystore, pki = service_env.open()
    engine = session.get_bind()

    def lookup(serial: str) -> StatusRow | None:  # what api/services.py reads
        with Session(engine) as fresh:
            row = fresh.exec(
                select(CertificateRecord)
                .where(CertificateRecord.serial == serial)
                .where(CertificateRecord.issuer == pki.citizen_ca.name)
            ).first()
        if row is None:
            return None
        return StatusRow(
            state=row.state, revoked_at=row.revoked_at, reason=row.revocation_reason, revision=row.revision
        )

    responder = OcspResponder(
        issuer=pki.citizen_ca, signer=pki.ocsp_responder, keystore=keystore, lookup=lookup
    )
    yield Ctx(
        root_der=pki.root.certificate.dump(),
        ca_der=pki.citizen_ca.certificate.dump(),
        responder=responder,
        revocation_calls=[],
    )
    session.close()
    keystore.close()


@pytest.fixture
def ctx(ctx_base: Ctx) -> Ctx:
    ctx_base.revocation_calls.clear()
    return ctx_base


@pytest.fixture(scope="module")
def p256(service_env: ServiceEnv) -> IssuedCitizen:
    return issue_citizen(service_env, Purpose.AUTHENTICATION, curve=ec.SECP256R1())


@pytest.fixture(scope="module")
def p384(service_env: ServiceEnv) -> IssuedCitizen:
    return issue_citizen(service_env, Purpose.AUTHENTICATION, curve=ec.SECP384R1())


@pytest.fixture(scope="module")
def rsa_citizen(service_env: ServiceEnv) -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    session, keystore, pki = service_env.open()
    try:
        record = issue_citizen_certificate(
            session,
            keystore,
            pki,
            subject=CitizenSubject(
                country="EE", given_name="Jaak-Kristjan", family_name="Jõeorg", personal_code="38001085718"
            ),
            purpose=Purpose.AUTHENTICATION,
            public_key_der=spki,
        )
    finally:
        session.close()
        keystore.close()
    assert record.der is not None
    return key, record.der


def rejected(ctx: Ctx, token: object, nonce: str, match: str, **kwargs: Any) -> None:
    with pytest.raises(WebEidRejected, match=match):
        ctx.validate(token, nonce, **kwargs)
    assert ctx.revocation_calls == [] or "revoked" in match, "OCSP asked for a token failing a cheaper check"


# --- tokens that are accepted ----------------------------------------------------------


def test_accepts_es256_and_reports_the_identity(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce = new_nonce()
    identity = ctx.validate(make_token(p256.private_key, p256.der, nonce), nonce)
    assert identity == WebEidIdentity(
        certificate_der=p256.der,
        serial=p256.record.serial,
        issuer_der=ctx.ca_der,
        country="EE",
        personal_code="49403136526",
        given_name="MARI-LIIS",
        family_name="MÄNNIK",
        algorithm="ES256",
    )
    assert ctx.revocation_calls == [(p256.der, ctx.ca_der)]


def test_accepts_es384(ctx: Ctx, p384: IssuedCitizen) -> None:
    nonce = new_nonce()
    identity = ctx.validate(make_token(p384.private_key, p384.der, nonce, algorithm="ES384"), nonce)
    assert (identity.algorithm, identity.serial) == ("ES384", p384.record.serial)


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_accepts_rsa(ctx: Ctx, rsa_citizen: tuple[rsa.RSAPrivateKey, bytes], algorithm: str) -> None:
    key, der = rsa_citizen
    nonce = new_nonce()
    identity = ctx.validate(make_token(key, der, nonce, algorithm=algorithm), nonce)
    assert (identity.personal_code, identity.given_name, identity.family_name) == (
        "38001085718",
        "JAAK-KRISTJAN",
        "JÕEORG",
    )


def test_pkcs1_signature_is_not_a_pss_signature(
    ctx: Ctx, rsa_citizen: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    key, der = rsa_citizen
    nonce = new_nonce()
    token = make_token(key, der, nonce, algorithm="RS256") | {"algorithm": "PS256"}
    rejected(ctx, token, nonce, "does not verify")


def _signing_certificate_entry(der: bytes) -> dict[str, object]:
    return {
        "certificate": b64(der),
        "supportedSignatureAlgorithms": [
            {"cryptoAlgorithm": "ECC", "hashFunction": "SHA-256", "paddingScheme": "NONE"}
        ],
    }


@pytest.mark.parametrize("token_format", ["web-eid:1", "web-eid:1.0", "web-eid:1.1"])
def test_accepts_format_versions(ctx: Ctx, p256: IssuedCitizen, token_format: str) -> None:
    nonce = new_nonce()
    ctx.validate(make_token(p256.private_key, p256.der, nonce, format=token_format), nonce)


def test_v1_1_signing_certificate_fields_are_accepted_and_ignored(
    ctx: Ctx, p256: IssuedCitizen, service_env: ServiceEnv
) -> None:
    signer = issue_citizen(service_env, Purpose.SIGNING)
    nonce = new_nonce()
    current = make_token(
        p256.private_key,
        p256.der,
        nonce,
        format="web-eid:1.1",
        unverifiedSigningCertificates=[_signing_certificate_entry(signer.der)],
    )
    earlier = make_token(
        p256.private_key,
        p256.der,
        nonce,
        format="web-eid:1.1",
        unverifiedSigningCertificate=b64(signer.der),
        supportedSignatureAlgorithms=[
            {"cryptoAlgorithm": "ECC", "hashFunction": "SHA-384", "paddingScheme": "NONE"}
        ],
        unverifiedIntermediateCertificates=[b64(ctx.ca_der)],
        someFutureField={"ignored": True},
    )
    for token in (current, earlier):
        assert ctx.validate(token, nonce).certificate_der == p256.der


def test_accepts_a_base64url_nonce_like_ours(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce = secrets.token_urlsafe(32)  # what identity.authentication issues
    ctx.validate(make_token(p256.private_key, p256.der, nonce), nonce)


def test_accepts_http_origin_on_localhost(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce, origin = new_nonce(), "http://127.0.0.1:8000"
    ctx.validate(make_token(p256.private_key, p256.der, nonce, origin=origin), nonce, origin=origin)


# --- what the signature binds ----------------------------------------------------------


def test_rejects_wrong_origin(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce, origin="https://evil.example")
    rejected(ctx, token, nonce, "does not verify")


def test_rejects_other_nonce(ctx: Ctx, p256: IssuedCitizen) -> None:
    token = make_token(p256.private_key, p256.der, new_nonce())
    rejected(ctx, token, new_nonce(), "does not verify")


def test_rejects_bad_signature(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce)
    signature = bytearray(base64.b64decode(token["signature"]))
    signature[-1] ^= 1
    rejected(ctx, token | {"signature": b64(bytes(signature))}, nonce, "does not verify")


def test_rejects_signature_made_with_another_key(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce = new_nonce()
    token = make_token(ec.generate_private_key(ec.SECP256R1()), p256.der, nonce)
    rejected(ctx, token, nonce, "does not verify")


def test_rejects_der_signature_where_raw_is_expected(
    ctx: Ctx, p256: IssuedCitizen, p384: IssuedCitizen
) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce, raw=False)
    rejected(ctx, token, nonce, r"has 64 bytes, not \d+ \(DER encoded\?")
    token = make_token(p384.private_key, p384.der, nonce, algorithm="ES384", raw=False)
    rejected(ctx, token, nonce, r"has 96 bytes, not \d+ \(DER encoded\?")


# --- the certificate -------------------------------------------------------------------


def test_rejects_expired_certificate(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce = new_nonce()
    not_after = x509.load_der_x509_certificate(p256.der).not_valid_after_utc
    token = make_token(p256.private_key, p256.der, nonce)
    rejected(ctx, token, nonce, "expired", now=not_after + timedelta(seconds=1))


def test_rejects_certificate_not_yet_valid(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce = new_nonce()
    not_before = x509.load_der_x509_certificate(p256.der).not_valid_before_utc
    token = make_token(p256.private_key, p256.der, nonce)
    rejected(ctx, token, nonce, "not valid before", now=not_before - timedelta(seconds=1))


def test_rejects_signing_certificate(ctx: Ctx, service_env: ServiceEnv) -> None:
    signer = issue_citizen(service_env, Purpose.SIGNING)
    nonce = new_nonce()
    token = make_token(signer.private_key, signer.der, nonce)
    rejected(ctx, token, nonce, "not an authentication certificate .it is a signing certificate")


@pytest.mark.parametrize(
    ("claimed", "fixture", "message"),
    [
        ("ES384", "p256", "ES384 needs a secp384r1 key; the certificate has an EC secp256r1 key"),
        ("ES256", "p384", "ES256 needs a secp256r1 key; the certificate has an EC secp384r1 key"),
        ("ES512", "p256", "ES512 needs a secp521r1 key"),
        ("RS256", "p256", "RS256 needs an RSA key"),
        ("PS256", "p384", "PS256 needs an RSA key"),
    ],
)
def test_rejects_algorithm_that_does_not_fit_the_key(
    ctx: Ctx, request: pytest.FixtureRequest, claimed: str, fixture: str, message: str
) -> None:
    citizen: IssuedCitizen = request.getfixturevalue(fixture)
    nonce = new_nonce()
    token = make_token(
        citizen.private_key, citizen.der, nonce, algorithm=f"ES{citizen.private_key.curve.key_size}"
    )
    rejected(ctx, token | {"algorithm": claimed}, nonce, message)


def test_rejects_es256_claimed_for_rsa_key(ctx: Ctx, rsa_citizen: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    key, der = rsa_citizen
    nonce = new_nonce()
    rejected(
        ctx,
        make_token(key, der, nonce, algorithm="RS256") | {"algorithm": "ES256"},
        nonce,
        "needs a secp256r1",
    )


def test_rejects_revoked_certificate_through_ocsp(ctx: Ctx, service_env: ServiceEnv) -> None:
    citizen = issue_citizen(service_env, Purpose.AUTHENTICATION)
    nonce = new_nonce()
    token = make_token(citizen.private_key, citizen.der, nonce)
    ctx.validate(token, nonce)  # good before
    service_env.run_eid("cert", "revoke", citizen.record.serial, "--reason", "key-compromise")
    ctx.revocation_calls.clear()
    rejected(ctx, token, nonce, "revoked according to OCSP")
    assert ctx.revocation_calls == [(citizen.der, ctx.ca_der)]


# --- the chain -------------------------------------------------------------------------


def _name(common_name: str, **extra: str) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "EE")]
    attributes += [x509.NameAttribute(getattr(NameOID, oid), value) for oid, value in extra.items()]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Certificate | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    ca: bool = False,
    eku: list[x509.ObjectIdentifier] | None = None,
    lifetime: timedelta = timedelta(days=30),
    digital_signature: bool | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca if digital_signature is None else digital_signature,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    signer = issuer_key or key
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(signer, hashes.SHA256())


@dataclass
class ForeignPki:
    ca: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey


def foreign_pki(ca_subject: x509.Name | None = None) -> ForeignPki:
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(ca_subject or _name("Throwaway CA"), ca_key, ca=True, lifetime=timedelta(days=365))
    subject = _name(
        "TAMM,MARI,60001019906", SURNAME="TAMM", GIVEN_NAME="MARI", SERIAL_NUMBER="PNOEE-60001019906"
    )
    leaf = _certificate(
        subject, leaf_key, issuer=ca, issuer_key=ca_key, eku=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    return ForeignPki(ca=ca, ca_key=ca_key, leaf=leaf, leaf_key=leaf_key)


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def test_rejects_certificate_of_a_foreign_ca(ctx: Ctx) -> None:
    pki = foreign_pki()
    nonce = new_nonce()
    rejected(ctx, make_token(pki.leaf_key, _der(pki.leaf), nonce), nonce, "not issued by a trusted CA")


def test_rejects_foreign_ca_that_copies_our_ca_name(ctx: Ctx) -> None:
    pki = foreign_pki(x509.load_der_x509_certificate(ctx.ca_der).subject)
    nonce = new_nonce()
    rejected(ctx, make_token(pki.leaf_key, _der(pki.leaf), nonce), nonce, "not issued by a trusted CA")


def test_foreign_certificate_passes_with_its_own_anchor(ctx: Ctx) -> None:
    """The same token is fine once its CA is trusted: the rejection above is about the chain."""
    pki = foreign_pki()
    nonce = new_nonce()
    when = datetime.now(UTC)
    identity = validate_auth_token(
        make_token(pki.leaf_key, _der(pki.leaf), nonce),
        origin=ORIGIN,
        nonce=nonce,
        trust_anchors=[_der(pki.ca)],
        intermediates=[],
        check_revocation=lambda cert, issuer: None,
        now=when,
    )
    assert (identity.personal_code, identity.issuer_der) == ("60001019906", _der(pki.ca))


def test_rejects_a_ca_certificate_even_with_client_auth(ctx: Ctx) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(
        "TAMM,MARI,60001019906", SURNAME="TAMM", GIVEN_NAME="MARI", SERIAL_NUMBER="PNOEE-60001019906"
    )
    ca = _certificate(subject, key, ca=True, digital_signature=True, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    nonce = new_nonce()
    rejected(ctx, make_token(key, _der(ca), nonce), nonce, "is a CA certificate", trust_anchors=[_der(ca)])


def test_rejects_when_only_the_root_is_missing(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce)
    rejected(ctx, token, nonce, "not issued by a trusted CA", trust_anchors=[_der(foreign_pki().ca)])


# --- the token's shape -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["none", "HS256", "RS384", "PS512", "es256", "ES256 "])
def test_rejects_unsupported_algorithm(ctx: Ctx, p256: IssuedCitizen, algorithm: str) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce) | {"algorithm": algorithm}
    rejected(ctx, token, nonce, f"signature algorithm '{algorithm}' is not supported")


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_rejects_missing_field(ctx: Ctx, p256: IssuedCitizen, field: str) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce)
    del token[field]
    rejected(ctx, token, nonce, f"no '{field}' field")


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
@pytest.mark.parametrize("value", ["", 42, ["x"], {"x": "y"}, True])
def test_rejects_field_that_is_not_a_string(ctx: Ctx, p256: IssuedCitizen, field: str, value: object) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce) | {field: value}
    rejected(ctx, token, nonce, f"'{field}' must be a non-empty string")


@pytest.mark.parametrize("token", [None, [], "{}", b"{}", 42, ("a", "b")])
def test_rejects_non_object_token(ctx: Ctx, token: object) -> None:
    rejected(ctx, token, new_nonce(), "must be a JSON object")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("unverifiedCertificate", "!!!!"),
        ("unverifiedCertificate", "MIIB"[:3]),
        ("unverifiedCertificate", "MIIB\nMIIB"),
        ("unverifiedCertificate", "MII-_A=="),
        ("unverifiedCertificate", "QUJD="),
        ("signature", "abc"),
        ("signature", "ab c"),
        ("signature", "é" * 8),
    ],
)
def test_rejects_malformed_base64(ctx: Ctx, p256: IssuedCitizen, field: str, value: str) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce) | {field: value}
    rejected(ctx, token, nonce, f"'{field}' is not valid base64")


def test_rejects_base64_that_is_not_a_certificate(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce) | {
        "unverifiedCertificate": b64(b"not a certificate")
    }
    rejected(ctx, token, nonce, "not a valid X.509 certificate")


def test_damaged_certificates_only_ever_raise_web_eid_rejected(ctx: Ctx, p256: IssuedCitizen) -> None:
    """Every single-bit flip and every truncation: parse errors of all kinds become rejections."""
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce)
    variants = [p256.der[:cut] for cut in range(len(p256.der))]
    for index in range(len(p256.der)):
        for bit in range(8):
            damaged = bytearray(p256.der)
            damaged[index] ^= 1 << bit
            variants.append(bytes(damaged))
    for der in variants:
        with pytest.raises(WebEidRejected):
            ctx.validate(token | {"unverifiedCertificate": b64(der)}, nonce)


def test_rejects_certificate_whose_signature_bit_string_is_not_der(ctx: Ctx) -> None:
    """The unused-bits count is outside the signed data and ignored by cryptography."""
    pki = foreign_pki()
    while pki.leaf.signature[-1] & 1:  # a count of 1 is only parseable if the last bit is 0
        pki = foreign_pki()
    der = bytearray(_der(pki.leaf))
    der[len(der) - len(pki.leaf.signature) - 1] = 1
    nonce = new_nonce()
    token = make_token(pki.leaf_key, bytes(der), nonce)
    rejected(ctx, token, nonce, "not DER: its signature has unused bits", trust_anchors=[_der(pki.ca)])


@pytest.mark.parametrize(
    ("field", "size", "message"),
    [
        ("unverifiedCertificate", 16 * 1024 + 1, "larger than 16384 bytes"),
        ("signature", 1025, "larger than 1024 bytes"),
    ],
)
def test_rejects_oversized_fields(ctx: Ctx, p256: IssuedCitizen, field: str, size: int, message: str) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce) | {field: b64(b"\0" * size)}
    rejected(ctx, token, nonce, message)


def test_rejects_oversized_or_deep_token(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce)
    rejected(ctx, token | {"padding": "x" * 200_000}, nonce, "larger than 128 KiB")
    rejected(ctx, token | {"padding": [0] * 200_000}, nonce, "larger than 128 KiB")
    deep: object = "x"
    for _ in range(50):
        deep = {"a": deep}
    rejected(ctx, token | {"deep": deep}, nonce, "nested deeper")
    rejected(ctx, token | {"bytes": b"x"}, nonce, "not JSON")


@pytest.mark.parametrize(
    "token_format",
    [
        "web-eid:2.0",
        "web-eid:0.9",
        "web-eid:1.00",
        "web-eid:01",
        "web-eid",
        "WEB-EID:1.0",
        "web-eid:1.",
        "web-eid:１",
    ],
)
def test_rejects_unsupported_format(ctx: Ctx, p256: IssuedCitizen, token_format: str) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce, format=token_format)
    rejected(ctx, token, nonce, "format")


def test_rejects_signing_certificates_in_a_v1_0_token(ctx: Ctx, p256: IssuedCitizen) -> None:
    nonce = new_nonce()
    token = make_token(
        p256.private_key,
        p256.der,
        nonce,
        unverifiedSigningCertificates=[_signing_certificate_entry(p256.der)],
    )
    rejected(ctx, token, nonce, "needs format web-eid:1.1")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"unverifiedSigningCertificates": "MIIB"}, "must be a list"),
        ({"unverifiedSigningCertificates": []}, "must be a list of 1 to"),
        ({"unverifiedSigningCertificates": ["MIIB"]}, "must be an object"),
        ({"unverifiedSigningCertificates": [{"supportedSignatureAlgorithms": []}]}, "base64 certificate"),
        (
            {
                "unverifiedSigningCertificates": [
                    {"certificate": "QUJD", "supportedSignatureAlgorithms": [{}]}
                ]
            },
            "'cryptoAlgorithm'",
        ),
        ({"unverifiedSigningCertificate": 5}, "base64 certificate"),
        ({"supportedSignatureAlgorithms": [{"cryptoAlgorithm": "ECC", "hashFunction": 1}]}, "'hashFunction'"),
        ({"unverifiedIntermediateCertificates": [7]}, "base64 certificate"),
        ({"appVersion": 2}, "'appVersion' must be a string"),
    ],
)
def test_rejects_malformed_optional_fields(
    ctx: Ctx, p256: IssuedCitizen, extra: dict[str, object], message: str
) -> None:
    nonce = new_nonce()
    token = make_token(p256.private_key, p256.der, nonce, format="web-eid:1.1") | extra
    rejected(ctx, token, nonce, message)


# --- the caller's origin and nonce -----------------------------------------------------


@pytest.mark.parametrize(
    "nonce",
    [new_nonce(16), new_nonce(31), "A" * 42, "not base64 at all!" * 4, ""],
    ids=["16-bytes", "31-bytes", "not-decodable-length", "not-base64", "empty"],
)
def test_rejects_short_or_malformed_nonce(ctx: Ctx, p256: IssuedCitizen, nonce: str) -> None:
    rejected(ctx, make_token(p256.private_key, p256.der, nonce), nonce, "challenge nonce must")


@pytest.mark.parametrize(
    "origin",
    [
        "https://example.org/",
        "https://example.org/login",
        "https://example.org?x=1",
        "http://example.org",
        "https://EXAMPLE.org",
        "https://user@example.org",
        "https://example.org:99999",
        "https://example.org:443",
        "example.org",
        "",
    ],
)
def test_rejects_origin_that_is_not_an_origin(ctx: Ctx, p256: IssuedCitizen, origin: str) -> None:
    nonce = new_nonce()
    rejected(
        ctx, make_token(p256.private_key, p256.der, nonce, origin=origin), nonce, "origin", origin=origin
    )


def test_revocation_checker_failure_becomes_web_eid_rejected(ctx: Ctx, p256: IssuedCitizen) -> None:
    def broken(cert_der: bytes, issuer_der: bytes) -> None:
        raise ConnectionError("responder down")

    nonce = new_nonce()
    with pytest.raises(WebEidRejected, match="revocation status could not be checked"):
        validate_auth_token(
            make_token(p256.private_key, p256.der, nonce),
            origin=ORIGIN,
            nonce=nonce,
            trust_anchors=[ctx.root_der],
            intermediates=[ctx.ca_der],
            check_revocation=broken,
            now=datetime.now(UTC),
        )


# --- the OCSP client -------------------------------------------------------------------


def test_ocsp_good_from_our_responder(ctx: Ctx, p256: IssuedCitizen) -> None:
    now = datetime.now(UTC)
    response = ctx.responder.respond(build_ocsp_request(p256.der, ctx.ca_der), now=now).der
    assert ocsp_status(response, p256.der, ctx.ca_der, [], now) == "good"
    assert ocsp_status(response, p256.der, ctx.ca_der, [ctx.ca_der], now) == "good"


def test_ocsp_nonce_is_checked(ctx: Ctx, p256: IssuedCitizen) -> None:
    now = datetime.now(UTC)
    nonce = secrets.token_bytes(16)
    response = ctx.responder.respond(build_ocsp_request(p256.der, ctx.ca_der, nonce=nonce), now=now).der
    assert ocsp_status(response, p256.der, ctx.ca_der, [], now, nonce=nonce) == "good"
    with pytest.raises(WebEidRejected, match="does not echo"):
        ocsp_status(response, p256.der, ctx.ca_der, [], now, nonce=secrets.token_bytes(16))


def test_ocsp_stale_response_is_rejected(ctx: Ctx, p256: IssuedCitizen) -> None:
    now = datetime.now(UTC)
    response = ctx.responder.respond(build_ocsp_request(p256.der, ctx.ca_der), now=now).der
    assert ocsp_status(response, p256.der, ctx.ca_der, [], now + timedelta(minutes=14)) == "good"
    with pytest.raises(WebEidRejected, match="stale: its nextUpdate"):
        ocsp_status(response, p256.der, ctx.ca_der, [], now + timedelta(minutes=16))


def test_ocsp_response_from_the_future_is_rejected(ctx: Ctx, p256: IssuedCitizen) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    response = ctx.responder.respond(build_ocsp_request(p256.der, ctx.ca_der), now=later).der
    with pytest.raises(WebEidRejected, match="in the future"):
        ocsp_status(response, p256.der, ctx.ca_der, [], datetime.now(UTC))


def test_ocsp_cert_id_mismatch_is_rejected(ctx: Ctx, p256: IssuedCitizen, p384: IssuedCitizen) -> None:
    now = datetime.now(UTC)
    response = ctx.responder.respond(build_ocsp_request(p256.der, ctx.ca_der), now=now).der
    with pytest.raises(WebEidRejected, match="CertID mismatch"):
        ocsp_status(response, p384.der, ctx.ca_der, [], now)


def _response(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    signer: x509.Certificate,
    signer_key: ec.EllipticCurvePrivateKey,
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    embed: bool = True,
) -> bytes:
    when = datetime.now(UTC)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=issuer,
            algorithm=hashes.SHA1(),
            cert_status=status,
            this_update=when,
            next_update=when + timedelta(minutes=15),
            revocation_time=when if status is ocsp.OCSPCertStatus.REVOKED else None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, signer)
    )
    if embed:
        builder = builder.certificates([signer])
    return builder.sign(signer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_ocsp_response_with_a_broken_signature_is_rejected() -> None:
    pki = foreign_pki()
    response = bytearray(_response(pki.leaf, pki.ca, pki.ca, pki.ca_key, embed=False))
    assert ocsp_status(bytes(response), _der(pki.leaf), _der(pki.ca), [], datetime.now(UTC)) == "good"
    response[-1] ^= 1  # the signature is the last field when no certificates are embedded
    with pytest.raises(WebEidRejected, match="signature does not verify"):
        ocsp_status(bytes(response), _der(pki.leaf), _der(pki.ca), [], datetime.now(UTC))


@pytest.mark.parametrize("wrong", ["serial", "name", "key"])
def test_ocsp_cert_id_must_match_in_every_part(wrong: str) -> None:
    """Serial, issuer name hash and issuer key hash each have to match, not just one of them."""
    pki = foreign_pki()
    ca_der = _der(pki.ca)
    name_hash = hashlib.sha256(pki.ca.subject.public_bytes()).digest()
    key_hash = hashlib.sha256(
        asn1_x509.Certificate.load(ca_der).public_key["public_key"].contents[1:]
    ).digest()
    now = datetime.now(UTC)
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=b"\1" * 32 if wrong == "name" else name_hash,
            issuer_key_hash=b"\1" * 32 if wrong == "key" else key_hash,
            serial_number=pki.leaf.serial_number + (wrong == "serial"),
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=now,
            next_update=now + timedelta(minutes=15),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, pki.ca)
        .sign(pki.ca_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    with pytest.raises(WebEidRejected, match="CertID mismatch"):
        ocsp_status(response, _der(pki.leaf), ca_der, [], now)


def test_ocsp_response_signed_by_a_foreign_key_is_rejected(ctx: Ctx, p256: IssuedCitizen) -> None:
    """A well-formed answer about our certificate, signed by a responder of another CA."""
    foreign = foreign_pki()
    responder_key = ec.generate_private_key(ec.SECP256R1())
    responder = _certificate(
        _name("Rogue OCSP"),
        responder_key,
        issuer=foreign.ca,
        issuer_key=foreign.ca_key,
        eku=[ExtendedKeyUsageOID.OCSP_SIGNING],
    )
    ours, issuer = x509.load_der_x509_certificate(p256.der), x509.load_der_x509_certificate(ctx.ca_der)
    response = _response(ours, issuer, responder, responder_key)
    with pytest.raises(WebEidRejected, match="neither the issuer nor a responder it delegated"):
        ocsp_status(response, p256.der, ctx.ca_der, [], datetime.now(UTC))
    # ...unless the caller configured that responder explicitly (RFC 6960 4.2.2.2).
    assert ocsp_status(response, p256.der, ctx.ca_der, [_der(responder)], datetime.now(UTC)) == "good"


def test_ocsp_delegate_needs_the_ocsp_signing_usage() -> None:
    pki = foreign_pki()
    responder_key = ec.generate_private_key(ec.SECP256R1())
    no_eku = _certificate(_name("Not a responder"), responder_key, issuer=pki.ca, issuer_key=pki.ca_key)
    with pytest.raises(WebEidRejected, match="lacks the OCSPSigning"):
        ocsp_status(
            _response(pki.leaf, pki.ca, no_eku, responder_key),
            _der(pki.leaf),
            _der(pki.ca),
            [],
            datetime.now(UTC),
        )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (ocsp.OCSPCertStatus.GOOD, "good"),
        (ocsp.OCSPCertStatus.REVOKED, "revoked"),
        (ocsp.OCSPCertStatus.UNKNOWN, "unknown"),
    ],
)
def test_ocsp_signed_by_the_issuer_itself(status: ocsp.OCSPCertStatus, expected: str) -> None:
    pki = foreign_pki()
    response = _response(pki.leaf, pki.ca, pki.ca, pki.ca_key, status=status)
    assert ocsp_status(response, _der(pki.leaf), _der(pki.ca), [], datetime.now(UTC)) == expected


def test_ocsp_unsuccessful_or_garbage_response_is_rejected(ctx: Ctx, p256: IssuedCitizen) -> None:
    now = datetime.now(UTC)
    unauthorized = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    with pytest.raises(WebEidRejected, match="answered unauthorized"):
        ocsp_status(unauthorized.public_bytes(serialization.Encoding.DER), p256.der, ctx.ca_der, [], now)
    malformed = ctx.responder.respond(b"\x30\x00", now=now).der
    with pytest.raises(WebEidRejected, match="answered malformed_request"):
        ocsp_status(malformed, p256.der, ctx.ca_der, [], now)
    with pytest.raises(WebEidRejected, match="not a valid DER OCSPResponse"):
        ocsp_status(b"garbage", p256.der, ctx.ca_der, [], now)


def test_damaged_ocsp_responses_only_ever_raise_web_eid_rejected(ctx: Ctx, p256: IssuedCitizen) -> None:
    """Every single-bit flip of a real response: rejected, or (unsigned encoding details) still good."""
    now = datetime.now(UTC)
    response = ctx.responder.respond(build_ocsp_request(p256.der, ctx.ca_der), now=now).der
    outcomes = set()
    for index in range(len(response)):
        for bit in range(8):
            damaged = bytearray(response)
            damaged[index] ^= 1 << bit
            try:
                outcomes.add(ocsp_status(bytes(damaged), p256.der, ctx.ca_der, [], now))
            except WebEidRejected:
                outcomes.add("rejected")
    assert outcomes <= {"rejected", "good"}


def test_ocsp_checks_the_certificate_belongs_to_the_issuer(ctx: Ctx, p256: IssuedCitizen) -> None:
    pki = foreign_pki()
    with pytest.raises(WebEidRejected, match="not issued by the given issuer"):
        ocsp_status(b"", p256.der, _der(pki.ca), [], datetime.now(UTC))
    with pytest.raises(WebEidRejected, match="not a valid X.509 certificate"):
        build_ocsp_request(b"junk", ctx.ca_der)
