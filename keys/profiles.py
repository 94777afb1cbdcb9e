"""Certificate profiles: what goes into each kind of certificate we issue.

Citizen certificates follow ETSI EN 319 412-1/-2 and the Estonian ID card: the
subject is ``C, CN="FAMILY,GIVEN,CODE", SN, GN, serialNumber=PNOEE-<code>``; the
authentication certificate allows client authentication, the signing certificate only
non-repudiation and carries the qualified-certificate statements. Organisations' e-seal
certificates follow EN 319 412-3: the subject names the organisation and its
``organizationIdentifier`` (e.g. ``NTREE-70000310``), and QcType says eseal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from asn1crypto import core, x509

from ._x509 import build_name, extension, key_identifier


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyOids:
    """Which policy identifiers our certificates and time stamps carry.

    The standard ETSI identifiers are always there. An operator with its own registered
    arc (e.g. an IANA enterprise number, 1.3.6.1.4.1.N) adds its policies under it. We
    ship no arc of our own: unregistered arcs are squatting, and a UUID arc (2.25.<128
    bits>) trips parsers that cap arcs at 32 or 64 bits (Go before 1.22, Botan, pkilint).
    """

    arc: str | None = None
    """The operator's registered OID arc, or None for standard identifiers only."""

    def _own(self, suffix: str) -> tuple[str, ...]:
        return (f"{self.arc}.{suffix}",) if self.arc else ()

    @property
    def citizen_ca(self) -> tuple[str, ...]:
        return (*self._own("1.1"), *self._own("1.2"), ETSI_NCP_PLUS, ETSI_QCP_N)

    @property
    def citizen_auth(self) -> tuple[str, ...]:
        return (*self._own("1.1"), ETSI_NCP_PLUS)

    @property
    def citizen_sign(self) -> tuple[str, ...]:
        return (*self._own("1.2"), ETSI_QCP_N)

    @property
    def tsa(self) -> str:
        """The time-stamp policy: ours if we have an arc, else ETSI's best-practices policy."""
        return self._own("2.1")[0] if self.arc else ETSI_BTSP

    @property
    def qr_seal(self) -> tuple[str, ...]:
        return self._own("3.1")

    @property
    def org_seal(self) -> tuple[str, ...]:
        return (*self._own("1.3"), ETSI_QCP_L)


# ETSI EN 319 411-1/-2 policy identifiers.
ETSI_NCP_PLUS = "0.4.0.2042.1.2"
ETSI_QCP_N = "0.4.0.194112.1.0"
ETSI_QCP_L = "0.4.0.194112.1.1"
# ETSI EN 319 421 best practices time-stamp policy.
ETSI_BTSP = "0.4.0.2023.1.1"

# ETSI EN 319 412-5 and -1 statement identifiers.
QCS_COMPLIANCE = "0.4.0.1862.1.1"
QCS_TYPE = "0.4.0.1862.1.6"
QCT_ESIGN = "0.4.0.1862.1.6.1"
QCT_ESEAL = "0.4.0.1862.1.6.2"
QCS_PKIX_SYNTAX_V2 = "1.3.6.1.5.5.7.11.2"
SEMANTICS_ID_NATURAL = "0.4.0.194121.1.1"
SEMANTICS_ID_LEGAL = "0.4.0.194121.1.2"
EXT_QC_STATEMENTS = "1.3.6.1.5.5.7.1.3"
EKU_DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"


class Profile(StrEnum):
    """Every kind of certificate the service issues."""

    ROOT_CA = "root-ca"
    CITIZEN_CA = "citizen-ca"
    OCSP_RESPONDER = "ocsp-responder"
    TSA = "tsa"
    QR_SEAL = "qr-seal"
    CITIZEN_AUTH = "citizen-auth"
    CITIZEN_SIGN = "citizen-sign"
    ORG_SEAL = "org-seal"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorityUrls:
    """Where relying parties find the issuer's certificate, CRL and OCSP responder."""

    issuer_certificate: str
    """URL of the issuing CA's certificate (AIA caIssuers)."""
    crl: str
    """URL of the issuing CA's CRL (CRL distribution point)."""
    ocsp: str | None = None
    """URL of the OCSP responder (AIA ocsp); None where status comes from the CRL only."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CitizenSubject:
    """The person a citizen certificate names."""

    country: str
    """ISO 3166 alpha-2 country of the personal code, e.g. ``EE``."""
    given_name: str
    """Given names, in full Unicode."""
    family_name: str
    """Family name, in full Unicode."""
    personal_code: str
    """National personal code, e.g. ``38001085718``."""

    @property
    def semantics_identifier(self) -> str:
        """ETSI EN 319 412-1 natural person identifier: ``PNOEE-38001085718``."""
        return f"PNO{self.country}-{self.personal_code}"

    def name(self) -> x509.Name:
        common = f"{self.family_name.upper()},{self.given_name.upper()},{self.personal_code}"
        return build_name(
            [
                ("country_name", self.country),
                ("common_name", common),
                ("surname", self.family_name.upper()),
                ("given_name", self.given_name.upper()),
                ("serial_number", self.semantics_identifier),
            ]
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrganisationSubject:
    """The organisation an e-seal certificate names (EN 319 412-3)."""

    country: str
    """ISO 3166 alpha-2 country of the registry, e.g. ``EE``."""
    name: str
    """The organisation's registered name, in full Unicode."""
    identifier: str
    """EN 319 412-1 legal person identifier, e.g. ``NTREE-70000310`` (registry, country, number)."""

    def x509_name(self) -> x509.Name:
        return build_name(
            [
                ("country_name", self.country),
                ("organization_name", self.name),
                ("organization_identifier", self.identifier),
                ("common_name", self.name),
            ]
        )


def service_name(*, country: str, organisation: str, common_name: str) -> x509.Name:
    return build_name(
        [
            ("country_name", country),
            ("organization_name", organisation),
            ("common_name", common_name),
        ]
    )


class _QcStatement(core.Sequence):
    _fields = [
        ("statement_id", core.ObjectIdentifier),
        ("statement_info", core.Any, {"optional": True}),
    ]


class _QcStatements(core.SequenceOf):
    _child_spec = _QcStatement


class _OidList(core.SequenceOf):
    _child_spec = core.ObjectIdentifier


class _SemanticsInformation(core.Sequence):
    _fields = [
        ("semantics_identifier", core.ObjectIdentifier, {"optional": True}),
        ("name_registration_authorities", x509.GeneralNames, {"optional": True}),
    ]


def _qc_statements(*, qualified: bool, legal_person: bool = False) -> x509.Extension:
    semantics = SEMANTICS_ID_LEGAL if legal_person else SEMANTICS_ID_NATURAL
    statements = [
        _QcStatement(
            {
                "statement_id": QCS_PKIX_SYNTAX_V2,
                "statement_info": _SemanticsInformation({"semantics_identifier": semantics}),
            }
        )
    ]
    if qualified:
        qc_type = QCT_ESEAL if legal_person else QCT_ESIGN
        statements.append(_QcStatement({"statement_id": QCS_COMPLIANCE}))
        statements.append(_QcStatement({"statement_id": QCS_TYPE, "statement_info": _OidList([qc_type])}))
    return extension(EXT_QC_STATEMENTS, _QcStatements(statements), critical=False)


def _key_usage(*bits: str) -> x509.Extension:
    return extension("key_usage", x509.KeyUsage(set(bits)), critical=True)


def _basic_constraints(*, ca: bool, path_length: int | None = None) -> x509.Extension:
    value: dict[str, object] = {"ca": ca}
    if path_length is not None:
        value["path_len_constraint"] = path_length
    return extension("basic_constraints", x509.BasicConstraints(value), critical=True)


def _eku(*purposes: str, critical: bool = False) -> x509.Extension:
    return extension("extended_key_usage", x509.ExtKeyUsageSyntax(list(purposes)), critical=critical)


def _policies(*oids: str) -> x509.Extension:
    value = x509.CertificatePolicies([{"policy_identifier": oid} for oid in oids])
    return extension("certificate_policies", value, critical=False)


def _identifiers(subject_key_der: bytes, issuer_key_der: bytes | None) -> list[x509.Extension]:
    exts = [
        extension(
            "key_identifier",
            core.OctetString(key_identifier(subject_key_der)),
            critical=False,
        )
    ]
    if issuer_key_der is not None:
        aki = x509.AuthorityKeyIdentifier({"key_identifier": key_identifier(issuer_key_der)})
        exts.append(extension("authority_key_identifier", aki, critical=False))
    return exts


def _distribution(urls: AuthorityUrls) -> list[x509.Extension]:
    crl_dp = x509.CRLDistributionPoints(
        [{"distribution_point": {"full_name": [x509.GeneralName("uniform_resource_identifier", urls.crl)]}}]
    )
    access = [
        {
            "access_method": "ca_issuers",
            "access_location": x509.GeneralName("uniform_resource_identifier", urls.issuer_certificate),
        }
    ]
    if urls.ocsp:
        access.insert(
            0,
            {
                "access_method": "ocsp",
                "access_location": x509.GeneralName("uniform_resource_identifier", urls.ocsp),
            },
        )
    return [
        extension("crl_distribution_points", crl_dp, critical=False),
        extension("authority_information_access", x509.AuthorityInfoAccessSyntax(access), critical=False),
    ]


def extensions_for(
    profile: Profile,
    *,
    subject_key_der: bytes,
    issuer_key_der: bytes | None,
    urls: AuthorityUrls | None,
    policies: PolicyOids,
    ec_key: bool = True,
) -> list[x509.Extension]:
    """The extensions of one profile, in a stable order."""
    ids = _identifiers(subject_key_der, None if profile is Profile.ROOT_CA else issuer_key_der)
    if profile is Profile.ROOT_CA:
        return [_basic_constraints(ca=True), _key_usage("key_cert_sign", "crl_sign"), *ids]
    assert urls is not None, f"profile {profile} needs issuer URLs"
    if profile is Profile.CITIZEN_CA:
        return [
            _basic_constraints(ca=True, path_length=0),
            _key_usage("key_cert_sign", "crl_sign"),
            *ids,
            _policies(*policies.citizen_ca),
            *_distribution(urls),
        ]
    if profile is Profile.OCSP_RESPONDER:
        # id-pkix-ocsp-nocheck: clients need not check the responder's own status.
        return [
            _key_usage("digital_signature"),
            _eku("ocsp_signing"),
            extension("ocsp_no_check", core.Null(), critical=False),
            *ids,
            extension(
                "authority_information_access",
                x509.AuthorityInfoAccessSyntax(
                    [
                        {
                            "access_method": "ca_issuers",
                            "access_location": x509.GeneralName(
                                "uniform_resource_identifier", urls.issuer_certificate
                            ),
                        }
                    ]
                ),
                critical=False,
            ),
        ]
    if profile is Profile.TSA:
        return [
            _key_usage("digital_signature"),
            _eku("time_stamping", critical=True),
            *ids,
            _policies(policies.tsa),
            *_distribution(urls),
        ]
    if profile is Profile.QR_SEAL:
        # nonRepudiation too: the same seal signs the PDF validation reports (PAdES).
        return [
            _key_usage("digital_signature", "non_repudiation"),
            *ids,
            *([_policies(*policies.qr_seal)] if policies.qr_seal else []),
            *_distribution(urls),
        ]
    if profile is Profile.CITIZEN_AUTH:
        bits = ("digital_signature", "key_agreement") if ec_key else ("digital_signature",)
        return [
            _key_usage(*bits),
            _eku("client_auth"),
            *ids,
            _policies(*policies.citizen_auth),
            *_distribution(urls),
            _qc_statements(qualified=False),
        ]
    if profile is Profile.CITIZEN_SIGN:
        # EKU: documentSigning (RFC 9336) says what the key is for; emailProtection is what
        # NSS (poppler's pdfsig) and Adobe check signers of documents against.
        return [
            _key_usage("non_repudiation"),
            _eku("email_protection", EKU_DOCUMENT_SIGNING),
            *ids,
            _policies(*policies.citizen_sign),
            *_distribution(urls),
            _qc_statements(qualified=True),
        ]
    if profile is Profile.ORG_SEAL:
        # Like the signing certificate, for the same validators, but a legal person's seal.
        return [
            _key_usage("digital_signature", "non_repudiation"),
            _eku("email_protection", EKU_DOCUMENT_SIGNING),
            *ids,
            _policies(*policies.org_seal),
            *_distribution(urls),
            _qc_statements(qualified=True, legal_person=True),
        ]
    raise AssertionError(f"unknown profile {profile}")
