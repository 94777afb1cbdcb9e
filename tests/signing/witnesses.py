"""Independent checks of a signed PDF: poppler's pdfsig, openssl cms, pyHanko's validator.

None of them shares code with ``signing/``: pdfsig verifies with NSS, openssl with its own
CMS code, and pyHanko is asked with our root as its only trust anchor and no fetching.
pyHanko 0.38 has no "which PAdES level is this" function, so ``pades_level`` derives the
level from what its validator establishes: a valid signature (B-B), a valid signature
time stamp (B-T), a pass of the "validation with time" process from the DSS alone
(B-LT), and a pass of the long-term availability (LTA) process (B-LTA).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESPassed
from pyhanko.sign.validation import (
    DocumentSecurityStore,
    EmbeddedPdfSignature,
    ades,
    async_validate_pdf_signature,
)
from pyhanko.sign.validation.policy_decl import (
    CertificateFetchingRule,
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer


def pdfsig(nss_db: str, path: Path) -> list[list[str]]:
    """pdfsig's report, one list of lines per signature (lines stripped of ``- ``).

    ``-no-ocsp``: NSS would otherwise ask the OCSP URL in the certificate, and no server
    runs there in these tests. pdfsig 22.12 reads NSS's last error code even after a
    successful verification, so the failed fetch (or any failed lookup, such as for an
    extendedKeyUsage a certificate does not have) turns "Certificate is Trusted." into
    "Unknown issue with Certificate or corrupted data."."""
    result = subprocess.run(
        ["pdfsig", "-nssdir", nss_db, "-no-ocsp", str(path)], capture_output=True, text=True, timeout=60
    )
    signatures: list[list[str]] = []
    for line in result.stdout.splitlines():
        if line.startswith("Signature #"):
            signatures.append([])
        elif signatures and line.startswith("  - "):
            signatures[-1].append(line[4:])
    assert signatures, result.stdout + result.stderr
    return signatures


def openssl_cms_verify(path: Path, root_pem: Path, workdir: Path, index: int = 0) -> str:
    """``openssl cms -verify`` on signature ``index``'s CMS over its signed byte ranges."""
    with path.open("rb") as stream:
        signature = PdfFileReader(stream).embedded_regular_signatures[index]
        data = path.read_bytes()
        start1, length1, start2, length2 = (int(v) for v in signature.sig_object["/ByteRange"])
        (workdir / "sig.der").write_bytes(signature.pkcs7_content)
    (workdir / "signed.bin").write_bytes(data[start1 : start1 + length1] + data[start2 : start2 + length2])
    result = subprocess.run(
        [
            "openssl", "cms", "-verify", "-binary", "-inform", "DER",
            "-in", str(workdir / "sig.der"), "-content", str(workdir / "signed.bin"),
            "-CAfile", str(root_pem), "-purpose", "any", "-out", "/dev/null",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    return result.stdout + result.stderr


@dataclass(frozen=True)
class PyHankoReport:
    status: PdfSignatureStatus
    level: str
    dss_ocsps: int
    dss_crls: int
    document_timestamps: int


def _spec(root: x509.Certificate, knowledge: LocalKnowledge | None = None) -> PdfSignatureValidationSpec:
    rule = RevocationCheckingRule.CRL_OR_OCSP_REQUIRED
    return PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=[root]),
                revinfo_policy=CertRevTrustPolicy(
                    RevocationCheckingPolicy(ee_certificate_rule=rule, intermediate_ca_cert_rule=rule)
                ),
            ),
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY,
                certificate_fetching_rule=CertificateFetchingRule.NEVER_FETCH,
            ),
            local_knowledge=knowledge or LocalKnowledge(),
        )
    )


def _dss_knowledge(reader: PdfFileReader) -> tuple[LocalKnowledge, int, int]:
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except Exception:  # noqa: BLE001 - no DSS
        return LocalKnowledge(), 0, 0
    ocsps = [asn1_ocsp.OCSPResponse.load(ref.get_object().data) for ref in dss.ocsps]
    crls = [asn1_crl.CertificateList.load(ref.get_object().data) for ref in dss.crls]
    knowledge = LocalKnowledge(
        known_ocsps=[c for resp in ocsps for c in OCSPContainer.load_multi(resp)],
        known_crls=[CRLContainer(c) for c in crls],
        known_certs=list(dss.load_certs()),
    )
    return knowledge, len(ocsps), len(crls)


async def async_pyhanko_report(path: Path, root_der: bytes) -> PyHankoReport:
    root = x509.Certificate.load(root_der)
    with path.open("rb") as stream:
        reader = PdfFileReader(stream)
        signature: EmbeddedPdfSignature = reader.embedded_regular_signatures[0]
        context = ValidationContext(trust_roots=[root], allow_fetching=False)
        status = await async_validate_pdf_signature(signature, context)
        knowledge, n_ocsp, n_crl = _dss_knowledge(reader)
        timestamps = len(reader.embedded_timestamp_signatures)
        level = "none"
        if status.bottom_line:
            level = "B-B"
            stamp = status.timestamp_validity
            if stamp is not None and stamp.intact and stamp.valid and stamp.trusted:
                level = "B-T"
                with_time = await ades.ades_with_time_validation(
                    signature.signed_data,
                    _spec(root, knowledge).signature_validation_spec,
                    raw_digest=signature.compute_digest(),
                    extra_status_kwargs=signature.summarise_integrity_info(),
                    status_cls=PdfSignatureStatus,
                )
                if n_ocsp + n_crl and with_time.ades_subindic == AdESPassed.OK:
                    level = "B-LT"
                    if timestamps:
                        lta = await ades.ades_lta_validation(signature, _spec(root))
                        if lta.ades_subindic == AdESPassed.OK and lta.oldest_evidence_record_timestamp:
                            level = "B-LTA"
    return PyHankoReport(
        status=status, level=level, dss_ocsps=n_ocsp, dss_crls=n_crl, document_timestamps=timestamps
    )
