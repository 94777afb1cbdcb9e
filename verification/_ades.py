"""pyHanko's AdES processes for one signature, and the facts the report takes from them.

Revocation data: what the document carries, plus, for our own certificates, what our
trust services answer in process. The long-term process runs first when the document
has archive time stamps after the signature (it includes the validation with time).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import x509
from pyhanko.sign.ades.report import AdESPassed
from pyhanko.sign.validation import ades
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.policy_decl import (
    CertificateFetchingRule,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.status import PdfSignatureStatus, StandardCMSSignatureStatus
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.registry import SimpleTrustManager

from . import _evidence
from ._run import Context, Run
from .report import Check


def _spec(context: Context, knowledge: Any, own: bool) -> SignatureValidationSpec:
    # Below our roots revocation data is required; for other anchors it is used when the
    # document carries it (the service cannot fetch the URLs a foreign certificate names).
    rule = (
        RevocationCheckingRule.CRL_OR_OCSP_REQUIRED if own else RevocationCheckingRule.CHECK_IF_DECLARED_SOFT
    )
    trust = context.trust
    return SignatureValidationSpec(
        cert_validation_policy=CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(
                trust_roots=[x509.Certificate.load(d) for d in trust.anchors]
            ),
            revinfo_policy=CertRevTrustPolicy(
                RevocationCheckingPolicy(ee_certificate_rule=rule, intermediate_ca_cert_rule=rule)
            ),
        ),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY,
            certificate_fetching_rule=CertificateFetchingRule.NEVER_FETCH,
        ),
        local_knowledge=knowledge,
    )


async def _gather(
    context: Context, run: Run, signature: EmbeddedPdfSignature
) -> tuple[_evidence.Evidence, bool]:
    evidence = _evidence.embedded_evidence(context.reader, signature)
    trust = context.trust
    evidence.certs += [x509.Certificate.load(der) for der in trust.helpers]
    ours = {x509.Certificate.load(der).subject.dump() for der in trust.own_roots + trust.own_certificates}
    roots = set(trust.own_roots)
    own = signature.signer_cert.issuer.dump() in ours
    if own and context.revocation is not None:
        wanted = tuple(
            dict.fromkeys(
                cert.dump()
                for cert in _evidence.certificates_in(signature)
                if cert.issuer.dump() in ours and cert.dump() not in roots
            )
        )
        try:
            data = await context.revocation(wanted)
            for der in data.ocsp_responses:
                evidence.add_ocsp(_evidence.IN_PROCESS, der)
            for der in data.crls:
                evidence.add_crl(_evidence.IN_PROCESS, der)
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - our own services failed: the hard fail below says so
            run.warnings.append("our own revocation services did not answer")
    return evidence, own


async def run_ades(
    context: Context, run: Run, signature: EmbeddedPdfSignature
) -> tuple[StandardCMSSignatureStatus | None, Any, str | None]:
    evidence, own = await _gather(context, run, signature)
    spec = _spec(context, evidence.knowledge(), own)
    # Revocation data just asked from our responder is dated now; a validation time
    # taken before it (when the request arrived) would make it "too recent".
    moment = max(context.now, datetime.now(UTC))
    timing = ValidationTimingInfo(
        validation_time=moment, best_signature_time=moment, point_in_time_validation=False
    )
    arguments: dict[str, Any] = {
        "timing_info": timing,
        "raw_digest": signature.compute_digest(),
        "extra_status_kwargs": signature.summarise_integrity_info(),
        "status_cls": PdfSignatureStatus,
    }
    stamped = bool(_evidence.signature_timestamps(signature))
    archived = any(revision > signature.signed_revision for revision in context.timestamp_revisions)
    lta = None
    if archived and stamped:
        # pyHanko's long-term process runs the validation with time itself; when it
        # passes, that is the result (and the level B-LTA), so it is not run twice.
        pdf_spec = PdfSignatureValidationSpec(signature_validation_spec=spec)
        try:
            lta = await ades.ades_lta_validation(signature, pdf_spec, timing_info=timing)
        except MemoryError:
            raise
        except Exception:  # noqa: BLE001 - a broken archive time stamp only costs the B-LTA level
            lta = None
    outcome: ades.AdESBasicValidationResult[Any]
    if lta is not None and lta.ades_subindic is AdESPassed.OK:
        outcome = lta
    elif stamped:
        outcome = await ades.ades_with_time_validation(signature.signed_data, spec, **arguments)
    else:
        # pyHanko 0.38's basic validation builds its status object with the CMS class
        # whatever ``status_cls`` says, so the PDF-only arguments stay out.
        del arguments["extra_status_kwargs"], arguments["status_cls"]
        outcome = await ades.ades_basic_validation(signature.signed_data, spec, **arguments)
    status: StandardCMSSignatureStatus | None = outcome.api_status
    _facts(context, run, signature, evidence, status, outcome)
    if not own and run.facts["revocation"].status == "not checked":
        run.warnings.append(
            "the signer's certificate status was not checked: it is not one of ours and the document "
            "carries no revocation data for it (the service fetches nothing)"
        )
    level = _level(status, evidence, signature, lta, own)
    if archived and (
        lta is None or lta.ades_subindic is not AdESPassed.OK or lta.oldest_evidence_record_timestamp is None
    ):
        run.checks.append(
            Check(name="long_term", passed=None, detail="the archive time stamps could not be validated")
        )
        run.warnings.append("a document time stamp after this signature could not be validated")
    elif archived:
        run.passed("long_term", "the archive time stamp chain is valid")
    return status, outcome, level


def _facts(
    context: Context,
    run: Run,
    signature: EmbeddedPdfSignature,
    evidence: _evidence.Evidence,
    status: StandardCMSSignatureStatus | None,
    outcome: Any,
) -> None:
    cert = signature.signer_cert
    if status is not None and status.validation_path is not None:
        chain = list(status.validation_path.iter_certs(include_root=True))
        run.facts["chain"] = tuple(_evidence.describe(c) for c in reversed(chain))
    info = evidence.status_of(cert)
    if status is not None and status.revocation_details is not None and info.status != "revoked":
        info = dataclasses.replace(
            info, status="revoked", revoked_at=status.revocation_details.revocation_date
        )
    run.facts["revocation"] = info
    best = getattr(outcome, "best_signature_time", None)
    stamp = getattr(status, "timestamp_validity", None)
    proven = [stamp.timestamp] if stamp is not None and stamp.intact and stamp.valid and stamp.trusted else []
    if best is not None and best < context.now - timedelta(seconds=1):
        proven.append(best)
    run.facts["best_proven_time"] = min(proven) if proven else None


def _level(
    status: StandardCMSSignatureStatus | None,
    evidence: _evidence.Evidence,
    signature: EmbeddedPdfSignature,
    lta: Any,
    own: bool,
) -> str | None:
    if status is None or not (status.intact and status.valid):
        return None
    stamp = getattr(status, "timestamp_validity", None)
    if stamp is None or not (stamp.intact and stamp.valid and stamp.trusted):
        return "B-B"
    embedded = (_evidence.DSS, _evidence.CMS)
    if not evidence.has_revocation_for(signature.signer_cert, sources=embedded):
        return "B-T"
    if lta is None or lta.ades_subindic is not AdESPassed.OK or lta.oldest_evidence_record_timestamp is None:
        return "B-LT"
    return "B-LTA"
