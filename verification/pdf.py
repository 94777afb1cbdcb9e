"""Validating the signatures of a PDF: pyHanko's AdES processes plus checks of our own.

Each signature goes through a table of named checks, in order; the first that fails
decides the indication, and the report lists every check run (``checks``) and the ones
that caught something (``caught_by``):

========================  =====================================================  ==========================
check                     what it establishes                                    when it fails
========================  =====================================================  ==========================
``structure``             the signature dictionary and CMS can be read, the      TOTAL-FAILED FORMAT_FAILURE
                          SubFilter is a PAdES/PKCS#7 one
``byte_range``            the byte range starts at 0, stays in the file, its     TOTAL-FAILED FORMAT_FAILURE
                          gap is exactly this signature's value, and it covers
                          the whole signed revision
``appended_data``         nothing follows the newest revision outside a          TOTAL-FAILED FORMAT_FAILURE
                          cross-reference section
``integrity``             the digest of the signed bytes matches                 TOTAL-FAILED HASH_FAILURE
``signature_value``       the signature value verifies with the signer's key     TOTAL-FAILED SIG_CRYPTO_FAILURE
``modifications``         every later revision is of an allowed kind             TOTAL-FAILED FORMAT_FAILURE
``certification``         later changes respect a certification's DocMDP         TOTAL-FAILED FORMAT_FAILURE
``certificate_chain``     the signer chains to a trust anchor                    as pyHanko's AdES result
``revocation``            revocation status known and not revoked                as pyHanko's AdES result
``timestamp``             signature time stamp valid (B-T and up)                as pyHanko's AdES result
``long_term``             archive time stamps valid (B-LTA)                      a warning only
========================  =====================================================  ==========================

Rules: the modification analysis always runs; anything it cannot classify fails; any
exception becomes INDETERMINATE with its reason; revocation data is required below our
own roots; nothing is fetched (certificates, CRLs and OCSP responses come from the file
or from the caller's in-process source).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields

from . import _revisions, _run, _signature
from ._mapped import mapped
from ._redact import install_log_redaction, redact
from .errors import VerificationError
from .report import Check, DocumentReport, document_indication
from .trust import TrustConfig

POLICY = (
    "eid-pades-1: ETSI EN 319 102-1 validation (pyHanko); modification analysis always on; "
    "revocation data required for our own PKI; nothing fetched from the network"
)
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationData:
    """Revocation data for certificates of our own PKI, from our own services (DER)."""

    ocsp_responses: tuple[bytes, ...] = ()
    """OCSPResponse structures."""
    crls: tuple[bytes, ...] = ()
    """CertificateList structures."""


RevocationProvider = Callable[[tuple[bytes, ...]], RevocationData | Awaitable[RevocationData]]
"""Certificates (DER) of our PKI in, their revocation data out: e.g. our OCSP responder
and current CRLs asked in process. Never a network fetch."""


class UnreadableDocument(VerificationError):
    """The upload is not a PDF pyHanko can read (garbage, truncated, encrypted)."""

    status = 422
    public = True
    slug = "unreadable-document"
    title = "Unreadable document"


async def async_validate_document(
    path: Path,
    *,
    trust: TrustConfig,
    revocation: RevocationProvider | None = None,
    document_name: str | None = None,
    now: datetime | None = None,
) -> DocumentReport:
    """Validate every signature in the PDF at ``path``; ``UnreadableDocument`` if it is
    not a PDF at all. Everything that goes wrong after the file opened is in the report."""
    install_log_redaction()
    now = now or datetime.now(UTC)
    digest = _sha256(path)
    with path.open("rb") as raw, mapped(raw) as stream:
        reader, fields = _open(stream)
        timestamps = [value for _, value, _ in fields if value.get("/Type") == "/DocTimeStamp"]
        signatures = [
            (name, value, ref) for name, value, ref in fields if value.get("/Type") != "/DocTimeStamp"
        ]
        context = _run.Context(
            reader=reader,
            stream=stream,
            trust=trust,
            revocation=_awaiting(revocation) if revocation else None,
            now=now,
            tail_problem=_tail(reader, stream),
            **_revisions_of(reader, fields),
        )
        reports = tuple([await _signature.async_validate(context, name, ref) for name, _, ref in signatures])
    warnings = () if signatures else ("the document has no signatures",)
    return DocumentReport(
        policy=POLICY,
        validation_time=now,
        document_name=document_name,
        document_sha256=digest,
        indication=document_indication(reports),
        signatures=reports,
        timestamp_count=len(timestamps),
        checks=(Check(name="structure", passed=True, detail="the file is a readable PDF"),),
        warnings=warnings,
    )


def _open(stream: BinaryIO) -> tuple[PdfFileReader, list[tuple[str, Any, Any]]]:
    try:
        reader = PdfFileReader(stream, strict=True)
        if reader.encrypted:
            raise UnreadableDocument("the PDF is encrypted; encrypted documents cannot be validated")
        fields = [
            (str(name), value.get_object(), ref)
            for name, value, ref in enumerate_sig_fields(reader, filled_status=True)
            if value is not None
        ]
        for _, value, _ in fields:
            if not isinstance(value, generic.DictionaryObject):
                raise UnreadableDocument("a signature field's value is not a dictionary")
    except (UnreadableDocument, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - pyHanko raises many types on hostile input
        raise UnreadableDocument(f"the file is not a readable PDF ({_reason(exc)})") from exc
    return reader, fields


def _revisions_of(reader: PdfFileReader, fields: list[tuple[str, Any, Any]]) -> dict[str, Any]:
    """Which revisions introduced a signature and which a document time stamp."""
    signature_revisions: set[int] = set()
    timestamp_revisions: set[int] = set()
    for _, value, ref in fields:
        try:
            revision = reader.xrefs.get_last_change(ref.get_object().raw_get("/V").reference)
        except Exception:  # noqa: BLE001, S112 - a direct /V: its revision stays unknown
            continue
        (timestamp_revisions if value.get("/Type") == "/DocTimeStamp" else signature_revisions).add(revision)
    return {
        "signature_revisions": frozenset(signature_revisions),
        "timestamp_revisions": frozenset(timestamp_revisions),
        "total_revisions": reader.xrefs.total_revisions,
    }


def _tail(reader: PdfFileReader, stream: BinaryIO) -> str | None:
    try:
        return _revisions.check_tail(reader, stream)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a file whose end cannot be read is not passed
        return f"the end of the file cannot be checked ({_reason(exc)})"


def _awaiting(provider: RevocationProvider) -> Callable[[tuple[bytes, ...]], Awaitable[RevocationData]]:
    async def call(certificates: tuple[bytes, ...]) -> RevocationData:
        result = provider(certificates)
        if inspect.isawaitable(result):
            return await result
        return result

    return call


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    """A short, safe reason: the exception's message without personal codes."""
    return redact(str(exc) or type(exc).__name__)[:200]
