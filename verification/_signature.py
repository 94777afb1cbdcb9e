"""One signature through the check table of ``verification.pdf`` (see there for the table)."""

from __future__ import annotations

from typing import Any

from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESPassed, AdESSubIndic
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.diff_analysis.policy_api import DiffResult
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature, read_certification_data
from pyhanko.sign.validation.status import (
    SignatureCoverageLevel,
    StandardCMSSignatureStatus,
)

from . import _ades, _evidence, _revisions
from ._redact import redact
from ._run import Context, Run, Stop
from .report import Check, Coverage, Indication, SignatureReport

_SUBFILTERS = ("/adbe.pkcs7.detached", "/ETSI.CAdES.detached")
_REVOCATION = {
    "REVOKED",
    "REVOKED_NO_POE",
    "REVOKED_CA_NO_POE",
    "TRY_LATER",
    "REVOCATION_OUT_OF_BOUNDS_NO_POE",
}
_TIMESTAMP = {"NO_POE", "TIMESTAMP_ORDER_FAILURE", "SIG_CONSTRAINTS_FAILURE"}
_BY_SUBINDICATION = {
    "HASH_FAILURE": "integrity",
    "SIG_CRYPTO_FAILURE": "signature_value",
    "FORMAT_FAILURE": "structure",
}


async def async_validate(context: Context, name: str, field_ref: Any) -> SignatureReport:
    run = Run(name=name)
    try:
        await _checks(context, run, field_ref)
    except Stop as stop:
        return run.report(stop.indication, stop.sub_indication, (stop.error,))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - every surprise is INDETERMINATE, never a pass
        detail = (
            f"the validation stopped on an unexpected error: {redact(str(exc) or type(exc).__name__)[:200]}"
        )
        run.checks.append(Check(name="validation", passed=None, detail=detail))
        return run.report(Indication.INDETERMINATE, AdESIndeterminate.GENERIC.name, (detail,))
    return run.report(Indication.TOTAL_PASSED, None)


async def _checks(context: Context, run: Run, field_ref: Any) -> None:
    signature = _structure(context, run, field_ref)
    problem = _revisions.check_byte_range(context.stream, signature.byte_range, signature.pkcs7_content)
    if problem is not None:
        raise run.failed("byte_range", problem, Indication.TOTAL_FAILED, AdESFailure.FORMAT_FAILURE.name)
    if context.tail_problem is not None:
        raise run.failed(
            "appended_data", context.tail_problem, Indication.TOTAL_FAILED, AdESFailure.FORMAT_FAILURE.name
        )
    run.passed("appended_data", "the file ends with its newest revision")
    policy = _revisions.RecordingDiffPolicy()
    signature.compute_integrity_info(diff_policy=policy, skip_diff=False)  # type: ignore[no-untyped-call]
    _coverage(context, run, signature, policy)
    status, outcome, level = await _ades.run_ades(context, run, signature)
    run.facts["level"] = level
    _integrity(run, status)
    _modifications(context, run, signature)
    _trust(run, outcome, status)
    if level in ("B-T", "B-LT"):
        run.warnings.append(
            f"the signature is {level}: it has no archive time stamp to keep it verifiable long-term"
        )


def _structure(context: Context, run: Run, field_ref: Any) -> EmbeddedPdfSignature:
    try:
        signature = EmbeddedPdfSignature(context.reader, field_ref, run.name)
        subfilter = signature.sig_object.get("/SubFilter")
        if subfilter not in _SUBFILTERS:
            raise ValueError(f"the SubFilter {subfilter} is not a PAdES or PKCS#7 detached signature")
        cert = signature.signer_cert
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - missing /Contents, bad CMS, no signer certificate, ...
        detail = f"the signature cannot be read: {redact(str(exc) or type(exc).__name__)[:200]}"
        raise run.failed(
            "structure", detail, Indication.TOTAL_FAILED, AdESFailure.FORMAT_FAILURE.name
        ) from exc
    run.passed("structure", "the signature dictionary and its CMS SignedData are well formed")
    signer_name, personal_code = _evidence.signer_identity(cert)
    run.facts.update(
        signer_name=signer_name,
        personal_code=personal_code,
        claimed_signing_time=signature.self_reported_timestamp,
        chain=(_evidence.describe(cert),),
    )
    return signature


def _coverage(
    context: Context, run: Run, signature: EmbeddedPdfSignature, policy: _revisions.RecordingDiffPolicy
) -> None:
    coverage = signature.coverage
    diff = signature.diff_result
    level = diff.modification_level if isinstance(diff, DiffResult) else ModificationLevel.OTHER
    later = _revisions.later_revisions(
        signed_revision=signature.signed_revision,
        total_revisions=context.total_revisions,
        recorded=policy.results,
        signature_revisions=set(context.signature_revisions),
        timestamp_revisions=set(context.timestamp_revisions),
    )
    run.facts["coverage"] = Coverage(
        whole_document=coverage is SignatureCoverageLevel.ENTIRE_FILE
        or (coverage is SignatureCoverageLevel.ENTIRE_REVISION and level <= ModificationLevel.LTA_UPDATES),
        signed_revision=signature.signed_revision + 1,
        total_revisions=context.total_revisions,
        modification_level=level.name,
        later_revisions=later,
    )
    if coverage not in (SignatureCoverageLevel.ENTIRE_FILE, SignatureCoverageLevel.ENTIRE_REVISION):
        raise run.failed(
            "byte_range",
            f"the signature does not cover its whole revision (coverage {getattr(coverage, 'name', coverage)})",
            Indication.TOTAL_FAILED,
            AdESFailure.FORMAT_FAILURE.name,
        )
    run.passed("byte_range", f"the byte range is sound and covers the signed revision ({coverage.name})")


def _integrity(run: Run, status: StandardCMSSignatureStatus | None) -> None:
    if status is None:
        raise run.failed(
            "integrity",
            "the integrity of the signature could not be established",
            Indication.INDETERMINATE,
            AdESIndeterminate.GENERIC.name,
        )
    if not status.intact:
        raise run.failed(
            "integrity",
            "the signed bytes were changed after signing",
            Indication.TOTAL_FAILED,
            "HASH_FAILURE",
        )
    run.passed("integrity", "the digest of the signed bytes matches the signature")
    if not status.valid:
        raise run.failed(
            "signature_value",
            "the signature value does not verify with the signer's public key",
            Indication.TOTAL_FAILED,
            "SIG_CRYPTO_FAILURE",
        )
    run.passed("signature_value", "the signature value verifies with the signer's public key")


def _modifications(context: Context, run: Run, signature: EmbeddedPdfSignature) -> None:
    diff = signature.diff_result
    coverage: Coverage = run.facts["coverage"]
    if not isinstance(diff, DiffResult) or diff.modification_level is ModificationLevel.OTHER:
        bad = [str(r.number) for r in coverage.later_revisions if not r.allowed]
        reason = (
            str(diff) if diff is not None and not isinstance(diff, DiffResult) else "unclassified changes"
        )
        raise run.failed(
            "modifications",
            f"revision {', '.join(bad) or '?'} changed the document in a way that is not allowed after "
            f"signing ({redact(reason)[:200]})",
            Indication.TOTAL_FAILED,
            AdESFailure.FORMAT_FAILURE.name,
        )
    kinds = sorted({r.change for r in coverage.later_revisions}) or ["none"]
    run.passed("modifications", f"later revisions: {', '.join(kinds)}")
    permission = _permission(context, signature)
    if permission is not None:
        allowed = {
            MDPPerm.NO_CHANGES: ModificationLevel.LTA_UPDATES,
            MDPPerm.FILL_FORMS: ModificationLevel.FORM_FILLING,
        }
        limit = allowed.get(permission, ModificationLevel.ANNOTATIONS)
        if diff.modification_level > limit:
            raise run.failed(
                "certification",
                f"the document is certified with permission P={permission.value}, and a later revision "
                f"made {diff.modification_level.name.lower().replace('_', ' ')} changes",
                Indication.TOTAL_FAILED,
                AdESFailure.FORMAT_FAILURE.name,
            )
        run.passed(
            "certification", f"later changes respect the certification permission P={permission.value}"
        )


def _permission(context: Context, signature: EmbeddedPdfSignature) -> MDPPerm | None:
    """The strictest DocMDP in force for changes after this signature: its own, or that
    of a certification signature made at or before it."""
    levels = [signature.docmdp_level] if signature.docmdp_level is not None else []
    certification = read_certification_data(context.reader)
    if certification is not None and certification.permission is not None:
        ref = context.reader.root["/Perms"].raw_get("/DocMDP")
        made = context.reader.xrefs.get_last_change(ref.reference) if hasattr(ref, "reference") else 0
        if made <= signature.signed_revision:
            levels.append(certification.permission)
    return min(levels, key=lambda perm: perm.value) if levels else None


def _trust(run: Run, outcome: Any, status: StandardCMSSignatureStatus | None) -> None:
    sub: AdESSubIndic = outcome.ades_subindic
    if sub is AdESPassed.OK:
        run.passed("certificate_chain", "the signer's certificate chains to a trusted root")
        run.passed("revocation", "the signer's certificate was not revoked")
        if getattr(status, "timestamp_validity", None) is not None:
            run.passed("timestamp", "the signature time stamp is valid")
        return
    name = str(getattr(sub, "name", sub))
    message = redact(str(outcome.failure_msg or name))[:300]
    unknown = run.facts.get("revocation") is not None and run.facts["revocation"].status == "not checked"
    if (
        name in _REVOCATION
        or "revocation" in message.lower()
        or (unknown and name == "CERTIFICATE_CHAIN_GENERAL_FAILURE")
    ):
        check = "revocation"
    elif name in _TIMESTAMP:
        check = "timestamp"
    else:
        check = _BY_SUBINDICATION.get(name, "certificate_chain")
    indication = Indication.TOTAL_FAILED if isinstance(sub, AdESFailure) else Indication.INDETERMINATE
    detail = _plain(name, message)
    if unknown and check == "revocation":
        detail = "no revocation information is available for the signer's certificate chain (required for our own certificates)"
    raise run.failed(check, detail, indication, name)


def _plain(name: str, message: str) -> str:
    words = {
        "NO_CERTIFICATE_CHAIN_FOUND": "the signer's certificate does not chain to a trusted root",
        "REVOKED": "the signer's certificate was revoked before the signature was made",
        "REVOKED_NO_POE": "the signer's certificate is revoked and nothing proves the signature was made before",
        "OUT_OF_BOUNDS_NO_POE": "the signer's certificate is expired or not yet valid, and no time stamp proves when the signature was made",
        "CERTIFICATE_CHAIN_GENERAL_FAILURE": "the signer's certificate chain could not be validated",
        "TRY_LATER": "no current revocation information is available for the signer's certificate",
        "HASH_FAILURE": "the signed bytes were changed after signing",
        "SIG_CRYPTO_FAILURE": "the signature value does not verify",
    }
    return f"{words.get(name, name.lower().replace('_', ' '))} ({message})"
