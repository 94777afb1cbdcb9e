"""Validation material of one signature and what the report says about it.

Revocation data comes from three places, in this order of preference: the document's
DSS, the CMS signature itself (Adobe's revocation-info-archival attribute), and the
caller's in-process source (our OCSP responder and CRLs). Nothing is fetched. The
report names the source of the signer's status, so a reader can tell "the document
carried it" from "the service asked its own responder".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from asn1crypto import cms, crl, ocsp, x509
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.general import (
    MultivaluedAttributeError,
    NonexistentAttributeError,
    find_unique_cms_attribute,
)
from pyhanko.sign.validation import DocumentSecurityStore, generic_cms
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.policy_decl import LocalKnowledge
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

from .report import CertificateInfo, RevocationInfo

DSS = "embedded in the document (DSS)"
CMS = "embedded in the signature (CMS)"
IN_PROCESS = "our trust services, asked in process"


@dataclass(slots=True)
class Evidence:
    """Revocation data and certificates gathered for one signature, each with its source."""

    ocsps: list[tuple[str, OCSPContainer]] = field(default_factory=list)
    crls: list[tuple[str, CRLContainer]] = field(default_factory=list)
    certs: list[x509.Certificate] = field(default_factory=list)

    def add_ocsp(self, source: str, der_or_value: bytes | ocsp.OCSPResponse) -> None:
        value = ocsp.OCSPResponse.load(der_or_value) if isinstance(der_or_value, bytes) else der_or_value
        if value["response_status"].native != "successful":
            return
        self.ocsps += [(source, container) for container in OCSPContainer.load_multi(value)]

    def add_crl(self, source: str, der_or_value: bytes | crl.CertificateList) -> None:
        value = crl.CertificateList.load(der_or_value) if isinstance(der_or_value, bytes) else der_or_value
        self.crls.append((source, CRLContainer(value)))

    def knowledge(self) -> LocalKnowledge:
        return LocalKnowledge(
            known_ocsps=[container for _, container in self.ocsps],
            known_crls=[container for _, container in self.crls],
            known_certs=list(self.certs),
        )

    def has_revocation_for(self, cert: x509.Certificate, *, sources: Sequence[str]) -> bool:
        return any(source in sources for source, _ in [*self._ocsps_for(cert), *self._crls_for(cert)])

    def _ocsps_for(self, cert: x509.Certificate) -> list[tuple[str, ocsp.SingleResponse]]:
        found = []
        for source, container in self.ocsps:
            single = container.extract_single_response()
            if single is not None and single["cert_id"]["serial_number"].native == cert.serial_number:
                found.append((source, single))
        return found

    def _crls_for(self, cert: x509.Certificate) -> list[tuple[str, CRLContainer]]:
        return [
            (source, container)
            for source, container in self.crls
            if container.crl_data["tbs_cert_list"]["issuer"] == cert.issuer
        ]

    def status_of(self, cert: x509.Certificate) -> RevocationInfo:
        """The signer's status from the first source that speaks of it (OCSP before CRL)."""
        for source, single in self._ocsps_for(cert):
            status = single["cert_status"]
            revoked_at = status.chosen["revocation_time"].native if status.name == "revoked" else None
            return RevocationInfo(
                status=status.name,
                source=f"OCSP response {source}",
                produced_at=single["this_update"].native,
                revoked_at=revoked_at,
            )
        for source, container in self._crls_for(cert):
            tbs = container.crl_data["tbs_cert_list"]
            revoked = [
                entry["revocation_date"].native
                for entry in tbs["revoked_certificates"]
                if entry["user_certificate"].native == cert.serial_number
            ]
            return RevocationInfo(
                status="revoked" if revoked else "good",
                source=f"CRL {source}",
                produced_at=tbs["this_update"].native,
                revoked_at=revoked[0] if revoked else None,
            )
        return RevocationInfo(status="not checked", source="no revocation data was available")


def embedded_evidence(reader: PdfFileReader, signature: EmbeddedPdfSignature) -> Evidence:
    """What the document and the signature carry."""
    evidence = Evidence()
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        dss = None
    if dss is not None:
        # Decoded with pyHanko's per-purpose limits (a CRL stream may not inflate to 1 GB).
        for ref in dss.ocsps:
            evidence.add_ocsp(DSS, ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE))
        for ref in dss.crls:
            evidence.add_crl(DSS, ref.get_object().read_data(DecodePurpose.CRL))
        evidence.certs += list(dss.load_certs())
    try:
        archival = find_unique_cms_attribute(
            signature.signer_info["signed_attrs"], "adobe_revocation_info_archival"
        )
    except (MultivaluedAttributeError, NonexistentAttributeError):
        archival = None
    if archival is not None:
        for value in archival["ocsp"]:
            evidence.add_ocsp(CMS, value)
        for value in archival["crl"]:
            evidence.add_crl(CMS, value)
    return evidence


def certificates_in(signature: EmbeddedPdfSignature) -> list[x509.Certificate]:
    """The signer's certificate, the other certificates of the CMS and of its time stamp."""
    certs = [signature.signer_cert, *signature.other_embedded_certs]
    for stamp in signature_timestamps(signature):
        certs += [choice.chosen for choice in stamp["certificates"] if choice.name == "certificate"]
    return certs


def signature_timestamps(signature: EmbeddedPdfSignature) -> list[cms.SignedData]:
    """The signature time stamp tokens (unsigned attribute), as SignedData values."""
    return list(generic_cms.extract_tst_data_iter(signature.signer_info, signed=False))


def describe(cert: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        subject=cert.subject.human_friendly,
        issuer=cert.issuer.human_friendly,
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before,
        not_after=cert.not_valid_after,
        sha256=hashlib.sha256(cert.dump()).hexdigest(),
    )


def signer_identity(cert: x509.Certificate) -> tuple[str | None, str | None]:
    """(name, personal code) from the subject: given name and surname (or the common
    name), and the ETSI EN 319 412-1 semantics identifier ``PNOxx-<code>``."""
    subject = cert.subject.native
    given, surname = subject.get("given_name"), subject.get("surname")
    name = f"{given} {surname}" if given and surname else subject.get("common_name")
    serial = subject.get("serial_number")
    code = None
    if isinstance(serial, str) and serial.startswith("PNO") and "-" in serial:
        code = serial.split("-", 1)[1]
    return (str(name) if name else None), code
