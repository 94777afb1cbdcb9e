# pyHanko's generic object model has no annotations; everything here goes through it.
# mypy: disable-error-code="no-untyped-call"
"""The incremental update of an invisible signature field, written without pyHanko's writer.

For a 1 MB document pyHanko's ``IncrementalPdfFileWriter`` and ``PdfSigner`` spend about
5 ms of CPU on an update of four objects: its object model, the document metadata (Info,
XMP) it refreshes, and a placeholder written a few bytes at a time. An invisible field
needs only what ISO 32000 asks of a signature (12.8) and what pyHanko's own signer adds
for one: the signature dictionary with /ByteRange and a zero-filled /Contents, the field
merged with its widget (zero /Rect, print and locked flags) on the first page, the
page's /Annots, the AcroForm's /Fields and /SigFlags, and a cross-reference section of
the source's kind (table or stream) with the trailer and /Prev. The objects that change
are read with pyHanko's reader and written with its serialiser, so names, strings and
references come out as pyHanko would write them.

Anything of an unusual shape (hybrid cross-references, a field of that name already
there, a page without a usable /Annots, a form or catalog that is not a dictionary)
gives None, and the caller takes pyHanko's writer: never a different result, only slower.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.xref import XRefStream, write_xref_table

_WIDGET_FLAGS = 132
"""Print (4) and locked (128), as pyHanko sets them on a signature widget."""
_BYTE_RANGE_WIDTH = 60
"""Characters kept for the /ByteRange numbers: four numbers of up to 13 digits each."""
# The numbers and the closing bracket take the place of the spaces, as pyHanko writes them.
_PLACEHOLDER_HEAD = b"/ByteRange [" + b" " * (_BYTE_RANGE_WIDTH + 1) + b"\n/Contents "


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldUpdate:
    """An incremental update that adds one invisible, unsigned signature field."""

    data: bytes
    """The bytes to append to the source, /ByteRange filled, /Contents zeros."""
    reserved_region_start: int
    """Offset in the whole document of the ``<`` that opens /Contents."""
    reserved_region_end: int
    """Offset just past the ``>`` that closes it."""


class _Positioned:
    """A ``BytesIO`` whose ``tell`` counts from where the update starts in the document
    (pyHanko's xref writers take positions from ``tell``)."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.buffer = BytesIO()

    def tell(self) -> int:
        return self.base + self.buffer.tell()

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)


def invisible_field_update(
    reader: PdfFileReader,
    *,
    source_size: int,
    ends_with_newline: bool,
    field_name: str,
    signing_time: datetime,
    reason: str | None,
    location: str | None,
    reserved: int,
) -> FieldUpdate | None:
    """The update for a new field ``field_name`` on the first page with an empty
    signature of ``reserved`` hex digits, or None where pyHanko's writer must do it.
    ``reader`` reads the source, whose size is ``source_size``."""
    if reader.xrefs.hybrid_xrefs_present:
        return None
    trailer = reader.trailer
    root_ref = trailer.raw_get("/Root")
    root = root_ref.get_object() if isinstance(root_ref, generic.IndirectObject) else None
    page_ref, _resources = reader.find_page_for_modification(0)
    page = page_ref.get_object()
    if not isinstance(root, generic.DictionaryObject) or not isinstance(page, generic.DictionaryObject):
        return None
    next_id = int(trailer["/Size"])
    field_ref = generic.IndirectObject(next_id, 0, reader)
    sig_ref = generic.IndirectObject(next_id + 1, 0, reader)
    next_id += 2
    changed: dict[tuple[int, int], generic.PdfObject] = {}

    new_root = _copy(root)
    form = root.raw_get("/AcroForm") if "/AcroForm" in root else None
    if form is None:
        form_ref = generic.IndirectObject(next_id, 0, reader)
        next_id += 1
        new_root[pdf_name("/AcroForm")] = form_ref
        changed[_key(root_ref)] = new_root
        changed[_key(form_ref)] = generic.DictionaryObject(
            {
                pdf_name("/Fields"): generic.ArrayObject([field_ref]),
                pdf_name("/SigFlags"): generic.NumberObject(3),
            }
        )
    else:
        form_object = form.get_object() if isinstance(form, generic.IndirectObject) else form
        if not isinstance(form_object, generic.DictionaryObject):
            return None
        new_form = _copy(form_object)
        fields = form_object.raw_get("/Fields") if "/Fields" in form_object else generic.ArrayObject()
        if not _append(changed, new_form, "/Fields", fields, field_ref):
            return None
        flags = form_object.get("/SigFlags", 0)
        new_form[pdf_name("/SigFlags")] = generic.NumberObject(
            (int(flags) if isinstance(flags, int) else 0) | 3
        )
        if isinstance(form, generic.IndirectObject):
            changed[_key(form)] = new_form
        else:
            new_root[pdf_name("/AcroForm")] = new_form
            changed[_key(root_ref)] = new_root

    new_page = _copy(page)
    annots = page.raw_get("/Annots") if "/Annots" in page else generic.ArrayObject()
    if not _append(changed, new_page, "/Annots", annots, field_ref):
        return None
    if pdf_name("/Annots") in new_page and not isinstance(annots, generic.IndirectObject):
        changed[_key(page_ref)] = new_page

    changed[_key(field_ref)] = generic.DictionaryObject(
        {
            pdf_name("/FT"): pdf_name("/Sig"),
            pdf_name("/T"): generic.TextStringObject(field_name),
            pdf_name("/Type"): pdf_name("/Annot"),
            pdf_name("/Subtype"): pdf_name("/Widget"),
            pdf_name("/F"): generic.NumberObject(_WIDGET_FLAGS),
            pdf_name("/Rect"): generic.ArrayObject([generic.NumberObject(0)] * 4),
            pdf_name("/P"): page_ref,
            pdf_name("/V"): sig_ref,
        }
    )
    return _write(
        reader,
        changed,
        sig_ref=sig_ref,
        next_id=next_id,
        base=source_size + (0 if ends_with_newline else 1),
        prefix=b"" if ends_with_newline else b"\n",
        signature=_signature_dictionary(signing_time, reason, location),
        reserved=reserved,
    )


def _copy(dictionary: generic.DictionaryObject) -> generic.DictionaryObject:
    """A shallow copy that keeps indirect references as references."""
    return generic.DictionaryObject({key: dictionary.raw_get(key) for key in dictionary})


def _key(ref: generic.IndirectObject) -> tuple[int, int]:
    return ref.idnum, ref.generation


def _append(
    changed: dict[tuple[int, int], generic.PdfObject],
    owner: generic.DictionaryObject,
    key: str,
    value: generic.PdfObject,
    item: generic.IndirectObject,
) -> bool:
    """Add ``item`` to the array ``owner[key]`` (``value``, maybe a reference): an
    indirect array is written anew, a direct one goes into ``owner``. False if the
    value is not an array."""
    array = value.get_object() if isinstance(value, generic.IndirectObject) else value
    if not isinstance(array, generic.ArrayObject):
        return False
    grown = generic.ArrayObject([array.raw_get(index) for index in range(len(array))] + [item])
    if isinstance(value, generic.IndirectObject):
        changed[_key(value)] = grown
    else:
        owner[pdf_name(key)] = grown
    return True


def _signature_dictionary(signing_time: datetime, reason: str | None, location: str | None) -> bytes:
    """The signature dictionary before /Contents and /ByteRange, as pyHanko fills it for PAdES."""
    entries: dict[generic.NameObject, generic.PdfObject] = {
        pdf_name("/Type"): pdf_name("/Sig"),
        pdf_name("/Filter"): pdf_name("/Adobe.PPKLite"),
        pdf_name("/SubFilter"): pdf_name("/ETSI.CAdES.detached"),
        pdf_name("/M"): generic.pdf_date(signing_time),
    }
    if reason is not None:
        entries[pdf_name("/Reason")] = generic.TextStringObject(reason)
    if location is not None:
        entries[pdf_name("/Location")] = generic.TextStringObject(location)
    buffer = BytesIO()
    generic.DictionaryObject(entries).write_to_stream(buffer, None)
    text = buffer.getvalue().rstrip()
    if not text.endswith(b">>"):  # pyHanko's dictionaries end so; anything else is a surprise
        raise ValueError("unexpected serialisation of the signature dictionary")
    return text[:-2]


def _write(
    reader: PdfFileReader,
    changed: dict[tuple[int, int], generic.PdfObject],
    *,
    sig_ref: generic.IndirectObject,
    next_id: int,
    base: int,
    prefix: bytes,
    signature: bytes,
    reserved: int,
) -> FieldUpdate:
    out = _Positioned(base)
    positions: dict[tuple[int, int], int] = {}
    for (idnum, generation), value in sorted(changed.items()):
        positions[(generation, idnum)] = out.tell()
        out.write(b"%d %d obj\n" % (idnum, generation))
        value.write_to_stream(out, None)
        out.write(b"\nendobj\n")
    positions[(sig_ref.generation, sig_ref.idnum)] = out.tell()
    out.write(b"%d %d obj\n" % (sig_ref.idnum, sig_ref.generation))
    out.write(signature)
    out.write(_PLACEHOLDER_HEAD)
    start = out.tell()
    out.write(b"<" + b"0" * reserved + b">")
    end = out.tell()
    out.write(b"\n>>\nendobj\n")

    trailer = reader.trailer.flatten()
    trailer.pop("/Prev", None)
    trailer[pdf_name("/ID")] = generic.ArrayObject(
        [_first_id(reader), generic.ByteStringObject(os.urandom(16))]
    )
    trailer[pdf_name("/Prev")] = generic.NumberObject(reader.last_startxref)
    if reader.has_xref_stream:
        xref_id = next_id
        xref_stream = XRefStream(positions)  # type: ignore[arg-type]
        xref_stream.compress()
        xref_stream.update(trailer)
        xref_stream[pdf_name("/Size")] = generic.NumberObject(xref_id + 1)
        location = out.tell()
        positions[(0, xref_id)] = location
        out.write(b"%d 0 obj\n" % xref_id)
        xref_stream.write_to_stream(out, None)
        out.write(b"\nendobj\n")
    else:
        location = write_xref_table(out, positions)
        trailer[pdf_name("/Size")] = generic.NumberObject(next_id)
        out.write(b"trailer\n")
        trailer.write_to_stream(out, None)
    out.write(b"\nstartxref\n%d\n%%%%EOF\n" % location)

    data = bytearray(prefix + out.buffer.getvalue())
    total = base + len(data) - len(prefix)
    numbers = b"0 %d %d %d]" % (start, end, total - end)
    at = len(prefix) + start - base - len(_PLACEHOLDER_HEAD)
    if len(numbers) > _BYTE_RANGE_WIDTH + 1 or not data.startswith(_PLACEHOLDER_HEAD, at):
        raise ValueError("the /ByteRange placeholder is not where it was written")
    at += len(b"/ByteRange [")
    data[at : at + len(numbers)] = numbers
    return FieldUpdate(data=bytes(data), reserved_region_start=start, reserved_region_end=end)


def _first_id(reader: PdfFileReader) -> generic.ByteStringObject:
    """The first part of the document ID, kept (ISO 32000 14.4); a new one if there is none."""
    try:
        first, _second = reader.trailer["/ID"]
    except (KeyError, TypeError, ValueError):
        return generic.ByteStringObject(os.urandom(16))
    if isinstance(first, generic.TextStringObject):
        return generic.ByteStringObject(first.original_bytes)
    if isinstance(first, generic.ByteStringObject):
        return first
    return generic.ByteStringObject(os.urandom(16))
