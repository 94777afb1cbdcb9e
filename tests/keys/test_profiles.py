"""Every certificate, CRL and OCSP response the service issues passes pkilint.

The validators are built exactly as pkilint's own command-line linters build them
(``lint_pkix_cert``, ``lint_etsi_cert``, ``lint_crl --type CRL --profile PKIX`` and
``lint_ocsp_response``). Findings of severity ERROR or FATAL fail a test; warnings,
notices and informational findings are allowed and shown in the failure message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pkilint import etsi, finding_filter, loader, pkix
from pkilint.etsi.etsi_constants import CertificateType
from pkilint.pkix import certificate, crl, extension, name
from pkilint.pkix import ocsp as pkilint_ocsp
from pkilint.validation import ValidationFindingSeverity, ValidationResult, ValidatorContainer
from sqlmodel import Session

from keys import crl as keys_crl
from keys.ca import RevocationReason
from keys.issuance import Purpose
from keys.keystore import KeyStore
from keys.models import utcnow
from keys.ocsp import OcspResponder, StatusRow, error_response
from keys.pki import Pki
from keys.profiles import (
    ETSI_NCP_PLUS,
    ETSI_QCP_N,
    EXT_QC_STATEMENTS,
    QCS_COMPLIANCE,
    QCS_PKIX_SYNTAX_V2,
    QCS_TYPE,
    QCT_ESIGN,
    SEMANTICS_ID_NATURAL,
    CitizenSubject,
)
from keys.revocation import revoke_certificate
from tests.conftest import ServiceEnv, issue_citizen

# A name with every Estonian letter outside ASCII, in mixed case: the profile uppercases it.
UNICODE_CITIZEN = CitizenSubject(
    country="EE",
    given_name="Jõe-Žanna",
    family_name="Šmidt-Pärnöüs",
    personal_code="38001085718",
)
CURVES = [pytest.param(ec.SECP256R1(), id="p256"), pytest.param(ec.SECP384R1(), id="p384")]

# How a deployment is reached. The session's service runs on http://127.0.0.1:<port>, which
# the ETSI linter rightly reports as an internal name in the CRL and AIA URLs of a
# certificate, so citizen certificates for the ETSI linter are issued as a deployment
# reachable under a public name would issue them.
DEPLOYED_URL = "http://eid.example.ee"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Allowed:
    """One pkilint finding let through on purpose, and why."""

    code: str
    """The finding code."""
    message_contains: tuple[str, ...] = ()
    """Strings that must all occur in the finding's message for it to match."""
    why: str
    """Shown next to the finding in the report."""

    def matches(self, code: str, message: str) -> bool:
        return code == self.code and all(part in message for part in self.message_contains)


# pkilint 0.13 knows qualified natural-person signing certificates only with the key in a
# QSCD (QCP-n-qscd). Ours are QCP-n: the citizen's app holds the key, so the certificate
# must not claim QcSSCD. Linted as QCP-n-qscd, exactly these two findings follow from that.
NOT_QSCD = (
    Allowed(
        code="etsi.en_319_412_5.qcs-5.01.qc_sscd_qualified_statement_absent",
        why="QCP-n, not QCP-n-qscd: the key is not in a QSCD",
    ),
    Allowed(
        code="etsi.en_319_412_2.qcs-5.2-2.mismatched_policy_identifier_for_certificate_type",
        message_contains=(ETSI_QCP_N,),
        why="QCP-n, not QCP-n-qscd: the key is not in a QSCD",
    ),
)


# Validators, as pkilint's command-line linters build them.


def pkix_certificate_validator() -> ValidatorContainer:
    """``lint_pkix_cert``."""
    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


def lint_etsi(
    document: certificate.RFC5280Certificate, certificate_type: CertificateType
) -> list[ValidationResult]:
    """``lint_etsi_cert --type <certificate_type>``, with its default finding filters."""
    validator = certificate.create_pkix_certificate_validator_container(
        etsi.create_decoding_validators(certificate_type),
        etsi.create_validators(certificate_type),
    )
    results, _ = finding_filter.filter_results(
        etsi.create_etsi_finding_filters(certificate_type), validator.validate(document.root)
    )
    return list(results)


def crl_validator() -> ValidatorContainer:
    """``lint_crl --type CRL --profile PKIX``."""
    return crl.create_pkix_crl_validator_container(
        [
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [
            crl.create_issuer_validator_container([]),
            crl.create_validity_validator_container([]),
            crl.create_extensions_validator_container([]),
        ],
    )


def ocsp_response_validator() -> ValidatorContainer:
    """``lint_ocsp_response``."""
    return pkilint_ocsp.create_pkix_ocsp_response_validator_container(
        [
            pkilint_ocsp.create_response_decoder(),
            pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
            pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS),
        ],
        [],
    )


def assert_no_errors(what: str, results: Sequence[ValidationResult], *allowed: Allowed) -> None:
    """Fail on any FATAL or ERROR finding not in ``allowed``; list every finding if so."""
    lines, errors = [], 0
    for result in results:
        for description in result.finding_descriptions:
            severity, code = description.finding.severity, description.finding.code
            message = description.message or ""
            excuse = next((a for a in allowed if a.matches(code, message)), None)
            if severity <= ValidationFindingSeverity.ERROR and excuse is None:
                errors += 1
            note = f"  [allowed: {excuse.why}]" if excuse else ""
            lines.append(f"  {severity.name} {code} @ {result.node.path} {message}{note}")
    findings = "\n".join(lines)
    assert errors == 0, f"pkilint: {errors} error(s) in {what}; all findings:\n{findings}"


def lint_certificate(what: str, der: bytes, *allowed: Allowed) -> certificate.RFC5280Certificate:
    document = loader.load_der_certificate(der, what)
    assert_no_errors(f"{what} (RFC 5280)", pkix_certificate_validator().validate(document.root), *allowed)
    return document


@pytest.fixture
def opened(service_env: ServiceEnv) -> Iterator[tuple[Session, KeyStore, Pki]]:
    session, keystore, pki = service_env.open()
    yield session, keystore, pki
    session.close()
    keystore.close()


def deployed(env: ServiceEnv, public_url: str = DEPLOYED_URL) -> ServiceEnv:
    """The same database, keys and CAs, configured to be reached at ``public_url``."""
    settings = env.settings.model_copy(update={"public_url": public_url})
    return dataclasses.replace(env, settings=settings)


# Certificates.


@pytest.mark.parametrize("which", ["root", "citizen_ca", "ocsp_responder", "tsa", "qr_seal"])
def test_service_certificate_passes_pkix_lint(opened: tuple[Session, KeyStore, Pki], which: str) -> None:
    _, _, pki = opened
    holder = getattr(pki, which)
    lint_certificate(which, holder.certificate.dump())


@pytest.mark.parametrize("curve", CURVES)
def test_authentication_certificate_passes_pkix_and_etsi_ncp_lint(
    service_env: ServiceEnv, curve: ec.EllipticCurve
) -> None:
    issued = issue_citizen(
        deployed(service_env), Purpose.AUTHENTICATION, subject=UNICODE_CITIZEN, curve=curve
    )
    document = lint_certificate("authentication certificate", issued.der)

    # Natural person (GN/SN), no QcCompliance, no serverAuth: NCP (here NCP+) per EN 319 411-1.
    certificate_type = etsi.determine_certificate_type(document)
    assert certificate_type is CertificateType.NCP_NATURAL_PERSON_CERTIFICATE
    assert_no_errors(
        f"authentication certificate (ETSI {certificate_type})",
        lint_etsi(document, certificate_type),
    )


@pytest.mark.parametrize("curve", CURVES)
def test_signing_certificate_passes_pkix_and_etsi_qualified_lint(
    service_env: ServiceEnv, curve: ec.EllipticCurve
) -> None:
    issued = issue_citizen(deployed(service_env), Purpose.SIGNING, subject=UNICODE_CITIZEN, curve=curve)
    document = lint_certificate("signing certificate", issued.der)

    # pkilint has no type for QCP-n without QSCD, so it detects the generic natural-person
    # type; lint with that (every EN 319 412-2 natural-person rule) ...
    detected = etsi.determine_certificate_type(document)
    assert detected is CertificateType.NCP_NATURAL_PERSON_CERTIFICATE
    assert_no_errors(f"signing certificate (ETSI {detected})", lint_etsi(document, detected))

    # ... and as the nearest qualified type, for the EN 319 412-5 rules of an EU qualified
    # certificate for e-signatures (QcCompliance, QcType esign, no QcCClegislation) and the
    # key usage of a content-commitment certificate.
    qualified = CertificateType.QCP_N_QSCD_EIDAS_FINAL_CERTIFICATE
    assert_no_errors(
        f"signing certificate (ETSI {qualified})",
        lint_etsi(document, qualified),
        *NOT_QSCD,
    )


def test_citizen_certificate_under_https_public_url_passes_etsi_lint(service_env: ServiceEnv) -> None:
    # EN 319 412-2 GEN-4.3.11-4 wants an http CRL distribution point: an https deployment
    # sets EID_PKI__CERTIFICATE_BASE_URL to its plain-HTTP name.
    env = deployed(service_env, "https://eid.example.ee")
    pki_settings = env.settings.pki.model_copy(update={"certificate_base_url": DEPLOYED_URL})
    env = dataclasses.replace(env, settings=env.settings.model_copy(update={"pki": pki_settings}))
    issued = issue_citizen(env, Purpose.AUTHENTICATION)
    assert b"https://" not in issued.der
    document = loader.load_der_certificate(issued.der, "authentication certificate")
    certificate_type = CertificateType.NCP_NATURAL_PERSON_CERTIFICATE
    assert_no_errors("authentication certificate", lint_etsi(document, certificate_type))


# Names and key usage, read back with an independent parser.


def _only(subject: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = subject.get_attributes_for_oid(oid)
    assert len(values) == 1, f"{oid._name}: {values}"
    value = values[0].value
    assert isinstance(value, str)
    return value


@pytest.mark.parametrize("purpose", [Purpose.AUTHENTICATION, Purpose.SIGNING])
def test_unicode_names_round_trip(service_env: ServiceEnv, purpose: Purpose) -> None:
    issued = issue_citizen(service_env, purpose, subject=UNICODE_CITIZEN)
    subject = x509.load_der_x509_certificate(issued.der).subject

    assert _only(subject, NameOID.COMMON_NAME) == "ŠMIDT-PÄRNÖÜS,JÕE-ŽANNA,38001085718"
    assert _only(subject, NameOID.SURNAME) == "ŠMIDT-PÄRNÖÜS"
    assert _only(subject, NameOID.GIVEN_NAME) == "JÕE-ŽANNA"
    assert _only(subject, NameOID.SERIAL_NUMBER) == "PNOEE-38001085718"
    assert _only(subject, NameOID.COUNTRY_NAME) == "EE"

    # Names as UTF8String; country and serialNumber as PrintableString (RFC 5280, EN 319 412-2).
    encodings = {
        attribute["type"].native: attribute["value"].name
        for rdn in asn1_x509.Certificate.load(issued.der).subject.chosen
        for attribute in rdn
    }
    assert encodings == {
        "country_name": "printable_string",
        "common_name": "utf8_string",
        "surname": "utf8_string",
        "given_name": "utf8_string",
        "serial_number": "printable_string",
    }


class _QcStatement(core.Sequence):
    _fields = [("statement_id", core.ObjectIdentifier), ("statement_info", core.Any, {"optional": True})]


class _QcStatements(core.SequenceOf):
    _child_spec = _QcStatement


def _qc_statements(cert: x509.Certificate) -> dict[str, core.Any | None]:
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(EXT_QC_STATEMENTS))
    assert not ext.critical
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    return {s["statement_id"].dotted: s["statement_info"] for s in _QcStatements.load(ext.value.value)}


def _key_usage_bits(cert: x509.Certificate) -> set[str]:
    ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ext.critical
    usage = ext.value
    bits = {
        "digital_signature": usage.digital_signature,
        "content_commitment": usage.content_commitment,
        "key_encipherment": usage.key_encipherment,
        "data_encipherment": usage.data_encipherment,
        "key_agreement": usage.key_agreement,
        "key_cert_sign": usage.key_cert_sign,
        "crl_sign": usage.crl_sign,
    }
    return {bit for bit, present in bits.items() if present}


def _policies(cert: x509.Certificate) -> set[str]:
    value = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    return {policy.policy_identifier.dotted_string for policy in value}


def test_authentication_certificate_usage(service_env: ServiceEnv) -> None:
    cert = x509.load_der_x509_certificate(issue_citizen(service_env, Purpose.AUTHENTICATION).der)

    assert _key_usage_bits(cert) == {"digital_signature", "key_agreement"}  # EC key
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert _policies(cert) == {ETSI_NCP_PLUS}
    statements = _qc_statements(cert)
    assert set(statements) == {QCS_PKIX_SYNTAX_V2}  # not qualified: semantics identifier only
    info = statements[QCS_PKIX_SYNTAX_V2]
    assert info is not None
    assert core.Sequence.load(info.dump())[0].dotted == SEMANTICS_ID_NATURAL


def test_signing_certificate_usage(service_env: ServiceEnv) -> None:
    cert = x509.load_der_x509_certificate(issue_citizen(service_env, Purpose.SIGNING).der)

    assert _key_usage_bits(cert) == {"content_commitment"}  # nonRepudiation only
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical
    assert [oid.dotted_string for oid in eku.value] == ["1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.36"]
    assert _policies(cert) == {ETSI_QCP_N}
    statements = _qc_statements(cert)
    assert set(statements) == {QCS_PKIX_SYNTAX_V2, QCS_COMPLIANCE, QCS_TYPE}
    qc_type = statements[QCS_TYPE]
    assert qc_type is not None
    assert [oid.dotted for oid in core.SequenceOf.load(qc_type.dump(), spec=core.ObjectIdentifier)] == [
        QCT_ESIGN
    ]
    semantics = statements[QCS_PKIX_SYNTAX_V2]
    assert semantics is not None
    assert core.Sequence.load(semantics.dump())[0].dotted == SEMANTICS_ID_NATURAL


# CRLs and OCSP responses.


@pytest.mark.parametrize("which", ["root", "citizen_ca"])
def test_crl_passes_lint(service_env: ServiceEnv, opened: tuple[Session, KeyStore, Pki], which: str) -> None:
    session, keystore, pki = opened
    if which == "citizen_ca":
        # At least one entry, with a reason code, so the entry extensions are linted too.
        serial = issue_citizen(service_env).record.serial
        revoke_certificate(session, keystore, pki, serial, reason=RevocationReason.KEY_COMPROMISE)
    record = keys_crl.publish(session, keystore, getattr(pki, which))
    assert record.der is not None

    document = loader.load_der_crl(record.der, f"{which} CRL")
    assert_no_errors(f"{which} CRL", crl_validator().validate(document.root))
    if which == "citizen_ca":
        assert int(serial, 16) in keys_crl.revoked_serials(record.der)


def _ocsp_request(pki: Pki, serials: list[int], *, nonce: bytes | None) -> bytes:
    issuer = pki.citizen_ca.certificate
    cert_id = {
        "hash_algorithm": {"algorithm": "sha1"},
        "issuer_name_hash": issuer.subject.sha1,
        "issuer_key_hash": issuer.public_key.sha1,
    }
    tbs: dict[str, object] = {
        "request_list": [{"req_cert": {**cert_id, "serial_number": serial}} for serial in serials]
    }
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    return bytes(asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump())


def _responder(pki: Pki, keystore: KeyStore, rows: dict[int, StatusRow]) -> OcspResponder:
    lookup: Callable[[str], StatusRow | None] = lambda serial: rows.get(int(serial, 16))  # noqa: E731
    return OcspResponder(issuer=pki.citizen_ca, signer=pki.ocsp_responder, keystore=keystore, lookup=lookup)


def test_ocsp_responses_pass_lint(opened: tuple[Session, KeyStore, Pki]) -> None:
    _, keystore, pki = opened
    revoked_at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    rows = {
        1: StatusRow(state="issued", revoked_at=None, reason=None, revision=0),
        2: StatusRow(state="revoked", revoked_at=revoked_at, reason="key_compromise", revision=1),
        3: StatusRow(state="revoked", revoked_at=revoked_at, reason="unspecified", revision=1),
        4: StatusRow(state="reserved", revoked_at=None, reason=None, revision=0),  # extended revoked
    }
    responder = _responder(pki, keystore, rows)
    now = utcnow()
    answers = {
        # good, revoked with and without reason, extended revoked, unknown; with a nonce
        "every status": responder.respond(_ocsp_request(pki, [1, 2, 3, 4, 5], nonce=b"\x01" * 16), now=now),
        # the cacheable RFC 5019 shape: one request, no nonce
        "cacheable": responder.respond(_ocsp_request(pki, [1], nonce=None), now=now + timedelta(seconds=1)),
        "malformed": responder.respond(b"\x30\x03garbage", now=now),
        "unauthorized": error_response("unauthorized"),
    }
    assert [answer.status for answer in answers.values()] == [
        "successful",
        "successful",
        "malformed_request",
        "unauthorized",
    ]
    for what, answer in answers.items():
        document = loader.load_der_ocsp_response(answer.der, what)
        assert_no_errors(f"OCSP response ({what})", ocsp_response_validator().validate(document.root))


def test_operator_arc_adds_own_policies(service_env: ServiceEnv) -> None:
    pki_settings = service_env.settings.pki.model_copy(update={"oid_arc": "1.3.6.1.4.1.64000.7"})
    env = dataclasses.replace(
        service_env, settings=service_env.settings.model_copy(update={"pki": pki_settings})
    )
    cert = x509.load_der_x509_certificate(issue_citizen(env, Purpose.SIGNING).der)
    assert _policies(cert) == {"1.3.6.1.4.1.64000.7.1.2", ETSI_QCP_N}
    document = loader.load_der_certificate(issue_citizen(env, Purpose.SIGNING).der, "signing certificate")
    assert_no_errors(
        "signing certificate with an operator arc", pkix_certificate_validator().validate(document.root)
    )


def test_organisation_seal_certificate_passes_pkix_and_etsi_legal_person_lint(
    service_env: ServiceEnv,
) -> None:
    from keys.profiles import OrganisationSubject
    from keys.seals import issue_seal_certificate

    env = deployed(service_env)
    session, keystore, pki = env.open()
    try:
        record = issue_seal_certificate(
            session,
            keystore,
            pki,
            subject=OrganisationSubject(
                country="EE", name="Põllumajandus- ja Toiduamet", identifier="NTREE-77000000"
            ),
            client_id="pkilint-client",
        )
    finally:
        session.close()
        keystore.close()
    assert record.der is not None
    document = lint_certificate("seal certificate", record.der)
    detected = etsi.determine_certificate_type(document)
    assert "LEGAL_PERSON" in detected.name, detected
    assert_no_errors(f"seal certificate (ETSI {detected})", lint_etsi(document, detected), *NOT_QSCD)
    parsed = x509.load_der_x509_certificate(record.der)
    org_id = parsed.subject.get_attributes_for_oid(x509.ObjectIdentifier("2.5.4.97"))[0].value
    assert org_id == "NTREE-77000000"
    assert "Põllumajandus" in parsed.subject.rfc4514_string()
