"""What a signature covers: its byte range, and what later revisions changed.

The byte range check is ours and deliberately simple (it does not trust pyHanko's
coverage judgement alone): four non-negative integers, starting at 0, inside the file,
with the one gap being exactly this signature's ``/Contents`` hex string. That catches
forged signatures whose ``/ByteRange`` points at moved data (signature wrapping).

The modification analysis is pyHanko's standard diff policy, run between the signed
revision and every later one; ``RecordingDiffPolicy`` also keeps each revision's
judgement so the report can say what each later revision changed.
"""

from __future__ import annotations

import binascii
import re
from typing import Any, BinaryIO

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel, StandardDiffPolicy
from pyhanko.sign.diff_analysis.policy_api import DiffResult, SuspiciousModification

from .report import Revision

_CHANGES = {
    ModificationLevel.NONE: "validation data",
    ModificationLevel.LTA_UPDATES: "validation data",
    ModificationLevel.FORM_FILLING: "form filling",
    ModificationLevel.ANNOTATIONS: "annotations",
    ModificationLevel.OTHER: "other",
}


def check_byte_range(stream: BinaryIO, byte_range: Any, contents: bytes) -> str | None:
    """``None`` if the byte range is sound, else what is wrong with it."""
    try:
        values = [int(value) for value in byte_range]
    except (TypeError, ValueError):
        return "the /ByteRange is not a list of integers"
    if len(values) != 4 or any(value < 0 for value in values):
        return "the /ByteRange does not have four non-negative integers"
    start1, length1, start2, length2 = values
    if start1 != 0:
        return "the signed bytes do not start at the beginning of the file"
    stream.seek(0, 2)
    size = stream.tell()
    if start2 + length2 > size or start2 < length1:
        return "the /ByteRange points outside the file or its two parts overlap"
    expected = b"<" + binascii.hexlify(contents) + b">"
    if start2 - length1 != len(expected):
        return "the gap in the /ByteRange is not the size of the signature value"
    stream.seek(length1)
    if stream.read(len(expected)).lower() != expected:
        return "the gap in the /ByteRange is not where this signature's value is"
    return None


class RecordingDiffPolicy(StandardDiffPolicy):
    """pyHanko's default diff policy, keeping each revision's result (level or reason)."""

    def __init__(self) -> None:
        super().__init__(
            global_rules=DEFAULT_DIFF_POLICY.global_rules,
            form_rule=DEFAULT_DIFF_POLICY.form_rule,
        )
        self.results: dict[int, ModificationLevel | str] = {}

    def apply(self, old: Any, new: Any, field_mdp_spec: Any = None, doc_mdp: Any = None) -> DiffResult:
        try:
            result = super().apply(old, new, field_mdp_spec, doc_mdp)
        except SuspiciousModification as exc:
            self.results[new.revision] = str(exc) or "a change the analysis does not allow"
            raise
        self.results[new.revision] = result.modification_level
        return result


def later_revisions(
    *,
    signed_revision: int,
    total_revisions: int,
    recorded: dict[int, ModificationLevel | str],
    signature_revisions: set[int],
    timestamp_revisions: set[int],
) -> tuple[Revision, ...]:
    """Each revision after ``signed_revision`` (0-based in pyHanko, 1-based in the report).

    pyHanko compares every later revision with the signed one, so a level is cumulative:
    a revision whose level did not rise added nothing of a higher kind."""
    revisions = []
    previous = ModificationLevel.NONE
    broken = False
    for number in range(signed_revision + 1, total_revisions):
        result = recorded.get(number)
        if broken or result is None:
            revisions.append(Revision(number=number + 1, change="not analysed", allowed=False))
            continue
        if isinstance(result, str):
            broken = True
            kind = _kind(number, signature_revisions, timestamp_revisions) or "other"
            revisions.append(Revision(number=number + 1, change=kind, allowed=False))
            continue
        if number in signature_revisions:
            change = "new signature"
        elif number in timestamp_revisions:
            change = "document time stamp"
        else:
            change = _CHANGES[result] if result > previous else "validation data"
        previous = max(previous, result)
        revisions.append(
            Revision(number=number + 1, change=change, allowed=result is not ModificationLevel.OTHER)
        )
    return tuple(revisions)


def _kind(number: int, signature_revisions: set[int], timestamp_revisions: set[int]) -> str | None:
    if number in signature_revisions:
        return "new signature"
    if number in timestamp_revisions:
        return "document time stamp"
    return None


# pyHanko's end of an xref table is after the "trailer" keyword, of an xref stream
# after "endstream"; what may follow is the rest of the trailer and the EOF marker.
_TAIL = re.compile(rb"\s*(?:endobj\s*)?(?:(?:trailer)?\s*<<.*?>>\s*)?startxref\s+\d+\s+%%EOF\s*\Z", re.S)
_MAX_TAIL = 64 * 1024


def check_tail(reader: PdfFileReader, stream: BinaryIO) -> str | None:
    """``None`` if the file ends with its newest revision, else what follows it.

    Bytes appended after the last cross-reference section belong to no revision, so
    pyHanko never sees them, but a lenient viewer that rebuilds a broken file may show
    them (an incremental saving attack without a cross-reference section)."""
    xrefs = reader.xrefs
    end = max(xrefs.get_xref_container_info(rev).end_location for rev in range(xrefs.total_revisions))
    stream.seek(0, 2)
    size = stream.tell()
    if size - end > _MAX_TAIL:
        return f"{size - end} bytes follow the last revision of the file"
    stream.seek(end)
    tail = stream.read()
    if not _TAIL.match(tail) or tail.count(b"obj") > 1 or b"stream" in tail:
        return "data was appended after the last revision without a cross-reference section"
    return None
