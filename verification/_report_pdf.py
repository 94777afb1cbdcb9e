"""The report as a plain PDF (A4, Helvetica), ready to be sealed by ``api/``.

Written with pyHanko's own PDF writer, so no extra dependency: a page is a text content
stream of lines, wrapped at a fixed width. Helvetica with WinAnsiEncoding covers the
Estonian letters; anything outside Windows-1252 is shown as "?".
"""

from __future__ import annotations

import io
import textwrap
from datetime import datetime

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from .report import DocumentReport, SignatureReport

_PAGE = (0, 0, 595, 842)
_TOP, _BOTTOM, _LEFT, _LEADING = 790, 60, 56, 13
_WIDTH = 92
_LINES_PER_PAGE = (_TOP - _BOTTOM) // _LEADING


def render_report_pdf(report: DocumentReport) -> bytes:
    """The report as PDF bytes (unsigned)."""
    lines = report_lines(report)
    writer = PdfFileWriter()  # type: ignore[no-untyped-call]
    font = generic.DictionaryObject(  # type: ignore[no-untyped-call]
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Font"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
            generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
            generic.pdf_name("/Encoding"): generic.pdf_name("/WinAnsiEncoding"),
        }
    )
    bold = generic.DictionaryObject(  # type: ignore[no-untyped-call]
        {**font, generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica-Bold")}
    )
    resources = generic.DictionaryObject(  # type: ignore[no-untyped-call]
        {
            generic.pdf_name("/Font"): generic.DictionaryObject(  # type: ignore[no-untyped-call]
                {
                    generic.pdf_name("/F1"): writer.add_object(font),
                    generic.pdf_name("/F2"): writer.add_object(bold),
                }
            )
        }
    )
    for start in range(0, max(len(lines), 1), _LINES_PER_PAGE):
        content = _page(lines[start : start + _LINES_PER_PAGE])
        stream = writer.add_object(generic.StreamObject(stream_data=content))
        writer.insert_page(PageObject(contents=stream, media_box=_PAGE, resources=resources))  # type: ignore[no-untyped-call]
    buffer = io.BytesIO()
    writer.write(buffer)  # type: ignore[no-untyped-call]
    return buffer.getvalue()


def report_lines(report: DocumentReport) -> list[tuple[bool, str]]:
    """(heading?, text) lines: plain words first, the technical detail after."""
    lines: list[tuple[bool, str]] = [(True, "Signature validation report")]
    add = lines.append
    add((False, f"Document: {report.document_name or '(no name)'}"))
    add((False, f"SHA-256: {report.document_sha256 or '-'}"))
    add((False, f"Validated: {_when(report.validation_time)}"))
    add(
        (
            False,
            f"Result: {report.indication.value} - {report.valid_count} of {report.signature_count} signatures valid",
        )
    )
    for text in report.errors + report.warnings:
        add((False, f"Note: {text}"))
    add((False, f"Policy: {report.policy}"))
    for number, signature in enumerate(report.signatures, start=1):
        add((False, ""))
        add((True, f"Signature {number}: {signature.signer_name or 'unknown signer'}"))
        lines.extend((False, text) for text in _signature_lines(signature))
    wrapped: list[tuple[bool, str]] = []
    for heading, text in lines:
        for part in textwrap.wrap(text, _WIDTH, subsequent_indent="    ") or [""]:
            wrapped.append((heading, part))
    return wrapped


def _signature_lines(signature: SignatureReport) -> list[str]:
    lines = [
        f"Result: {signature.indication.value}"
        + (f" ({signature.sub_indication})" if signature.sub_indication else ""),
        f"Level: {signature.level or '-'}   Field: {signature.field_name}",
        f"Personal code: {signature.personal_code or '-'}",
        f"Claimed signing time: {_when(signature.claimed_signing_time)}",
        f"Proven by a time stamp: {_when(signature.best_proven_time)}",
    ]
    if signature.revocation is not None:
        lines.append(f"Certificate status: {signature.revocation.status} ({signature.revocation.source})")
    if signature.coverage is not None:
        coverage = signature.coverage
        covered = "the whole document" if coverage.whole_document else "not the whole document"
        lines.append(f"Covers: {covered}; revision {coverage.signed_revision} of {coverage.total_revisions}")
        for revision in coverage.later_revisions:
            verdict = "allowed" if revision.allowed else "NOT allowed"
            lines.append(f"  Later revision {revision.number}: {revision.change} ({verdict})")
    lines += [f"Error: {text}" for text in signature.errors]
    lines += [f"Warning: {text}" for text in signature.warnings]
    for check in signature.checks:
        mark = {True: "passed", False: "FAILED", None: "undecided"}[check.passed]
        lines.append(f"Check {check.name}: {mark} - {check.detail}")
    lines += [f"Certificate: {cert.subject} (serial {cert.serial})" for cert in signature.chain]
    return lines


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if value is not None else "-"


def _page(lines: list[tuple[bool, str]]) -> bytes:
    parts = [f"BT {_LEADING} TL {_LEFT} {_TOP} Td"]
    for heading, text in lines:
        parts.append(f"/{'F2' if heading else 'F1'} {11 if heading else 9} Tf ({_escape(text)}) Tj T*")
    parts.append("ET")
    return "\n".join(parts).encode("cp1252", errors="replace")


def _escape(text: str) -> str:
    safe = text.encode("cp1252", errors="replace").decode("cp1252")
    return (
        safe.replace("\\", "\\\\")
        .replace("(", "\\(")
        .replace(")", "\\)")
        .replace("\r", " ")
        .replace("\n", " ")
    )
