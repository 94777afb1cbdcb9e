"""Opening an uploaded PDF for signing: strict parsing, decode limits, clear refusals.

Size and time limits are the caller's (the API streams the upload to disk and bounds the
work); here the document is parsed in pyHanko's strict mode with its limits for
untrusted input, so a decompression bomb or a broken cross-reference table is refused
instead of repaired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.decode_limits import DecodeLimits
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfDecodeLimitError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import MDPPerm, enumerate_sig_fields
from pyhanko.sign.validation import read_certification_data

from ._streams import StreamingPdfFileWriter
from .errors import InvalidDocument, InvalidSigningRequest

_HEADER_WINDOW = 1024
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentInfo:
    """What ``check_document`` found out about a PDF."""

    pages: int
    """Number of pages."""
    signatures: int
    """Signatures and document timestamps already in the document."""
    signature_fields: tuple[str, ...]
    """Names of the signature fields already present, filled or not."""
    size: int
    """File size in bytes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PageBox:
    """The visible area of a page in default user space (its CropBox, else MediaBox)."""

    left: float
    bottom: float
    right: float
    top: float
    rotate: int
    """The page's /Rotate (0, 90, 180, 270)."""


def check_document(path: Path) -> DocumentInfo:
    """Open ``path`` as pyHanko will when signing; ``InvalidDocument`` says what is wrong."""
    with path.open("rb") as stream:
        reader = open_reader(stream)
        return _info(reader, size=path.stat().st_size)


def open_reader(stream: IO[bytes]) -> PdfFileReader:
    """A strict reader with limits for untrusted input, or ``InvalidDocument``."""
    head = stream.read(_HEADER_WINDOW)
    stream.seek(0)
    if b"%PDF-" not in head:
        raise InvalidDocument("the file is not a PDF document")
    try:
        reader = PdfFileReader(stream, strict=True, decode_limits=DecodeLimits.for_untrusted_input())
        encrypted = reader.encrypted
    except Exception as exc:  # noqa: BLE001 - a hostile file can make the parser raise anything
        raise damaged(
            exc, "the PDF is truncated or damaged and cannot be read reliably; save it again"
        ) from exc
    if encrypted:
        raise InvalidDocument("the PDF is encrypted or password protected; remove the protection first")
    return reader


def open_writer(stream: IO[bytes]) -> tuple[StreamingPdfFileWriter, tuple[str, ...]]:
    """An incremental writer over a document (refuses documents locked by DocMDP), and
    the names of its signature fields. It reads objects from ``stream`` as needed and
    copies the rest with the kernel, so the document is never held in memory."""
    reader, names = open_source(stream)
    return writer_for(reader), names


def writer_for(reader: PdfFileReader) -> StreamingPdfFileWriter:
    """pyHanko's incremental writer over what ``open_source`` read."""
    return StreamingPdfFileWriter(reader.stream, prev=reader)


def open_source(stream: IO[bytes]) -> tuple[PdfFileReader, tuple[str, ...]]:
    """A reader over a document to sign (refuses documents locked by DocMDP), and the
    names of its signature fields.

    Unlike ``check_document`` it does not walk the whole page tree (for 1 000 pages that
    is most of the work): only the page that gets the signature's widget is looked up,
    and a damaged tree on the way there is refused as damage."""
    reader = open_reader(stream)
    try:
        pages = int(reader.root["/Pages"]["/Count"])
        names = tuple(_signature_field_names(reader))
    except Exception as exc:  # noqa: BLE001
        raise damaged(exc, "the PDF's page tree or form fields are damaged") from exc
    if pages < 1:
        raise InvalidDocument("the PDF has no pages")
    try:
        certification = read_certification_data(reader)
    except Exception as exc:  # noqa: BLE001
        raise damaged(exc, "the PDF has an unreadable certification signature") from exc
    if certification is not None and certification.permission == MDPPerm.NO_CHANGES:
        raise InvalidDocument("the PDF is certified against any change, so it cannot be signed again")
    return reader, names


def damaged(exc: BaseException, message: str) -> InvalidDocument:
    """``InvalidDocument`` for a parser failure; a decode limit gets its own message."""
    seen: BaseException | None = exc
    for _ in range(16):
        if seen is None:
            break
        if isinstance(seen, PdfDecodeLimitError):
            return InvalidDocument(
                "the PDF contains data that decompresses beyond the limits for uploaded documents"
            )
        seen = seen.__cause__ or seen.__context__
    return InvalidDocument(message)


def _info(reader: PdfFileReader, *, size: int | None) -> DocumentInfo:
    try:
        pages = int(reader.root["/Pages"]["/Count"])
        reader.find_page_for_modification(-1)  # type: ignore[no-untyped-call]
        fields = tuple(_signature_field_names(reader))
        signatures = len(reader.embedded_signatures)
    except Exception as exc:  # noqa: BLE001
        raise damaged(exc, "the PDF's page tree or form fields are damaged") from exc
    if pages < 1:
        raise InvalidDocument("the PDF has no pages")
    return DocumentInfo(pages=pages, signatures=signatures, signature_fields=fields, size=size or 0)


def _signature_field_names(reader: PdfFileReader) -> list[str]:
    return [name for name, _value, _ref in enumerate_sig_fields(reader, filled_status=None)]


def page_box(writer: IncrementalPdfFileWriter, page_index: int) -> tuple[int, PageBox]:
    """The page's index (non-negative) and visible box; ``InvalidSigningRequest`` if out of range."""
    count = int(writer.root["/Pages"]["/Count"])
    index = page_index + count if page_index < 0 else page_index
    if not 0 <= index < count:
        raise InvalidSigningRequest(f"page {page_index} does not exist: the document has {count} pages")
    page_ref, _resources = writer.find_page_for_modification(index)  # type: ignore[no-untyped-call]
    page = page_ref.get_object()
    box = _inherited(page, "/CropBox") or _inherited(page, "/MediaBox")
    numbers = (generic.NumberObject, generic.FloatObject)
    if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, numbers) for v in box):
        raise InvalidDocument("the page to stamp has no valid MediaBox")
    x1, y1, x2, y2 = (float(v) for v in box)
    rotate = _inherited(page, "/Rotate")
    return index, PageBox(
        left=min(x1, x2),
        bottom=min(y1, y2),
        right=max(x1, x2),
        top=max(y1, y2),
        rotate=int(rotate) % 360 if isinstance(rotate, generic.NumberObject) else 0,
    )


def _inherited(page: generic.PdfObject, key: str) -> generic.PdfObject | None:
    node: generic.PdfObject | None = page
    for _ in range(64):  # page trees deeper than this are hostile
        if not isinstance(node, generic.DictionaryObject):
            return None
        if key in node:
            value: generic.PdfObject = node[key]
            return value
        parent = node.get("/Parent")
        node = parent.get_object() if parent is not None else None
    return None


def field_name_for(existing: tuple[str, ...], requested: str | None) -> str:
    """The requested field name (checked) or the first free ``SignatureN`` after the
    ``existing`` signature fields."""
    if requested is not None:
        if not _FIELD_NAME.fullmatch(requested):
            raise InvalidSigningRequest("a field name is 1-64 of A-Z a-z 0-9 _ -")
        return requested
    number = len(existing) + 1
    while f"Signature{number}" in existing:
        number += 1
    return f"Signature{number}"
