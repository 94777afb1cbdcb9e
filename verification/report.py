"""The validation report of a signed PDF, modelled on SiVa's and worded in ETSI EN 319 102-1.

A ``DocumentReport`` has a summary (how many signatures, how many pass, when, under which
policy) and one ``SignatureReport`` per signature: the indication and sub-indication, the
PAdES level, the signer, the times, the chain, the revocation status and where it came
from, what the signature covers, and the named checks that were run, so a reader can see
which check caught a bad document (``caught_by``). Values cross process boundaries as
plain dictionaries (``to_dict`` / ``from_dict``), never as pickled objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Indication(StrEnum):
    """The main indication of ETSI EN 319 102-1 (as SiVa spells it)."""

    TOTAL_PASSED = "TOTAL-PASSED"
    TOTAL_FAILED = "TOTAL-FAILED"
    INDETERMINATE = "INDETERMINATE"


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One named check of the validation and its outcome."""

    name: str
    """Stable name: ``structure``, ``byte_range``, ``integrity``, ``signature_value``,
    ``modifications``, ``certification``, ``certificate_chain``, ``revocation``,
    ``timestamp``, ``long_term``, ``resource_limits``."""
    passed: bool | None
    """True passed, False failed, None could not be decided (or was not reached)."""
    detail: str
    """What was checked or found, in plain words."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateInfo:
    """One certificate of a chain, leaf first."""

    subject: str
    """Subject distinguished name, human readable."""
    issuer: str
    """Issuer distinguished name, human readable."""
    serial: str
    """Serial number in hexadecimal."""
    not_before: datetime
    """Start of validity."""
    not_after: datetime
    """End of validity."""
    sha256: str
    """SHA-256 fingerprint of the DER, hexadecimal."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationInfo:
    """The signer certificate's revocation status as the validation saw it."""

    status: str
    """``good``, ``revoked``, ``unknown`` or ``not checked``."""
    source: str
    """Where the status came from, e.g. "OCSP response embedded in the document (DSS)" or
    "our OCSP responder, asked in process"."""
    produced_at: datetime | None = None
    """When the OCSP response or CRL used was issued, if one was found."""
    revoked_at: datetime | None = None
    """The revocation time, for a revoked certificate."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Revision:
    """A revision added to the file after the signed one."""

    number: int
    """Revision number, 1 being the original file."""
    change: str
    """``new signature``, ``document time stamp``, ``validation data``, ``form filling``,
    ``annotations``, ``other`` (not allowed) or ``not analysed``."""
    allowed: bool
    """Whether the change is one a signed document may receive."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    """What a signature covers."""

    whole_document: bool
    """True when no later revision changed anything but validation data or time stamps."""
    signed_revision: int
    """The revision the signature signed (1 being the original file)."""
    total_revisions: int
    """Revisions in the file."""
    modification_level: str
    """pyHanko's judgement of all later changes: NONE, LTA_UPDATES, FORM_FILLING,
    ANNOTATIONS or OTHER."""
    later_revisions: tuple[Revision, ...] = ()
    """The revisions added after the signature, with what each changed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureReport:
    """The result for one signature."""

    field_name: str
    """Name of the signature form field."""
    indication: Indication
    """TOTAL-PASSED, TOTAL-FAILED or INDETERMINATE."""
    sub_indication: str | None
    """ETSI EN 319 102-1 sub-indication (HASH_FAILURE, REVOKED, ...) when not passed."""
    level: str | None
    """PAdES baseline level established: B-B, B-T, B-LT or B-LTA (None if not even B-B)."""
    signer_name: str | None = None
    """The signer's name from the certificate."""
    personal_code: str | None = None
    """The personal code from the subject serialNumber (``PNOEE-…``). Never logged."""
    claimed_signing_time: datetime | None = None
    """The signing time the signer claims (CMS signingTime or the /M entry)."""
    best_proven_time: datetime | None = None
    """The earliest time a valid time stamp proves the signature existed."""
    chain: tuple[CertificateInfo, ...] = ()
    """The signer's certificate chain, leaf first."""
    revocation: RevocationInfo | None = None
    """The signer certificate's revocation status."""
    coverage: Coverage | None = None
    """What the signature covers and what was added later."""
    checks: tuple[Check, ...] = ()
    """Every check run, in order."""
    caught_by: tuple[str, ...] = ()
    """Names of the checks that failed or could not be decided."""
    warnings: tuple[str, ...] = ()
    """Things a reader should know that do not change the indication."""
    errors: tuple[str, ...] = ()
    """Why the signature did not pass, in plain words."""

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentReport:
    """The report for one uploaded document."""

    policy: str
    """The validation policy applied (name and short description)."""
    validation_time: datetime
    """When the validation ran."""
    document_name: str | None = None
    """The file name the document came with, if any."""
    document_sha256: str | None = None
    """SHA-256 of the file, hexadecimal."""
    indication: Indication
    """TOTAL-PASSED only when there is at least one signature and every one passed."""
    signatures: tuple[SignatureReport, ...] = ()
    """One entry per signature, in the order of the file."""
    timestamp_count: int = 0
    """Document time stamps in the file (they support signatures; not counted as signatures)."""
    checks: tuple[Check, ...] = ()
    """Document-level checks (reading the file, resource limits)."""
    warnings: tuple[str, ...] = ()
    """Document-level warnings."""
    errors: tuple[str, ...] = ()
    """Document-level errors, e.g. a validation stopped by a limit."""
    caught_by: tuple[str, ...] = field(default=())
    """Names of the document-level checks that failed."""

    @property
    def signature_count(self) -> int:
        return len(self.signatures)

    @property
    def valid_count(self) -> int:
        return sum(1 for signature in self.signatures if signature.passed)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; the summary fields first, as SiVa puts them."""
        data = _plain(self)
        assert isinstance(data, dict)
        return {"signature_count": self.signature_count, "valid_count": self.valid_count, **data}

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DocumentReport:
        """The inverse of ``to_dict`` (the summary counts are recomputed)."""
        return cls(
            policy=data["policy"],
            validation_time=datetime.fromisoformat(data["validation_time"]),
            document_name=data.get("document_name"),
            document_sha256=data.get("document_sha256"),
            indication=Indication(data["indication"]),
            signatures=tuple(_signature(item) for item in data.get("signatures", ())),
            timestamp_count=int(data.get("timestamp_count", 0)),
            checks=tuple(Check(**item) for item in data.get("checks", ())),
            warnings=tuple(data.get("warnings", ())),
            errors=tuple(data.get("errors", ())),
            caught_by=tuple(data.get("caught_by", ())),
        )


def document_indication(signatures: tuple[SignatureReport, ...]) -> Indication:
    """All passed (and at least one) → passed; any failed → failed; else indeterminate."""
    if signatures and all(signature.passed for signature in signatures):
        return Indication.TOTAL_PASSED
    if any(signature.indication is Indication.TOTAL_FAILED for signature in signatures):
        return Indication.TOTAL_FAILED
    return Indication.INDETERMINATE


def _plain(value: Any) -> Any:
    # pyHanko's strings and numbers are subclasses that remember their PDF reader.
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _signature(data: dict[str, Any]) -> SignatureReport:
    revocation = data.get("revocation")
    coverage = data.get("coverage")
    return SignatureReport(
        field_name=data["field_name"],
        indication=Indication(data["indication"]),
        sub_indication=data.get("sub_indication"),
        level=data.get("level"),
        signer_name=data.get("signer_name"),
        personal_code=data.get("personal_code"),
        claimed_signing_time=_time(data.get("claimed_signing_time")),
        best_proven_time=_time(data.get("best_proven_time")),
        chain=tuple(
            CertificateInfo(
                **{
                    **item,
                    "not_before": datetime.fromisoformat(item["not_before"]),
                    "not_after": datetime.fromisoformat(item["not_after"]),
                }
            )
            for item in data.get("chain", ())
        ),
        revocation=None
        if revocation is None
        else RevocationInfo(
            status=revocation["status"],
            source=revocation["source"],
            produced_at=_time(revocation.get("produced_at")),
            revoked_at=_time(revocation.get("revoked_at")),
        ),
        coverage=None
        if coverage is None
        else Coverage(
            whole_document=coverage["whole_document"],
            signed_revision=coverage["signed_revision"],
            total_revisions=coverage["total_revisions"],
            modification_level=coverage["modification_level"],
            later_revisions=tuple(Revision(**item) for item in coverage.get("later_revisions", ())),
        ),
        checks=tuple(Check(**item) for item in data.get("checks", ())),
        caught_by=tuple(data.get("caught_by", ())),
        warnings=tuple(data.get("warnings", ())),
        errors=tuple(data.get("errors", ())),
    )
