"""The visible signature stamp: who signed, when, why, and a QR code to the verification page.

The stamp uses pyHanko's ``QRStampStyle`` (``TextStampStyle`` without a URL) and the
standard Courier font with WinAnsi encoding, the text written in that same encoding
(``_WinAnsiCourier``). That covers Estonian (õ ä ö ü š ž) and most Western European
names; any other character is shown without its accent (ū as u), or as ``?``. Embedding
an OpenType font would lift the limit, but subsetting it costs ~50 ms per stamp.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pyhanko.pdf_utils.font.api import ShapeResult
from pyhanko.pdf_utils.font.basic import COURIER_META, SimpleFontEngine, SimpleFontEngineFactory
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp import QRStampStyle, TextStampStyle

from ._document import PageBox
from .errors import InvalidSigningRequest

STAMP_WIDTH = 250.0
"""Stamp width in points (about 88 mm)."""
STAMP_HEIGHT = 80.0
"""Stamp height in points (about 28 mm)."""
MARGIN = 28.0
"""Distance from the page edges in points (about 10 mm)."""
STAMP_GAP = 8.0
"""Space between stacked stamps in points."""
MAX_TEXT = 120
"""Longest name, reason or location shown; longer ones are cut with an ellipsis."""


class StampPosition(StrEnum):
    """Where on the page the stamp goes."""

    BOTTOM_RIGHT = "bottom-right"
    BOTTOM_LEFT = "bottom-left"
    TOP_RIGHT = "top-right"
    TOP_LEFT = "top-left"


@dataclass(frozen=True, slots=True, kw_only=True)
class StampSpec:
    """A visible signature stamp. Reason and location come from ``async_prepare``."""

    signer_name: str
    """Name shown on the stamp, e.g. ``Mari-Liis Männik``."""
    heading: str = "Digitally signed by"
    """First line: ``Sealed by`` for an organisation's e-seal."""
    time: datetime | None = None
    """Time shown on the stamp; the claimed signing time when None."""
    qr_url: str | None = None
    """URL the QR code encodes (the verification page); no QR code when None."""
    page: int = -1
    """Page index; negative counts from the end, so -1 is the last page."""
    position: StampPosition = StampPosition.BOTTOM_RIGHT
    """Corner of the page the stamp is placed in."""
    slot: int = 0
    """Stacking place: slot n sits n stamps further from the corner (the envelope's
    n-th signer), so several signers' stamps on one page do not overlap."""


def stamp_rectangle(page: PageBox, position: StampPosition, slot: int = 0) -> tuple[int, int, int, int]:
    """The stamp's rectangle on ``page``, inside the margins of the chosen corner,
    ``slot`` stamps (and gaps) away from it towards the middle of the page.

    Corners are those of the page's own coordinate space: on a page with /Rotate the
    viewer turns the stamp with the page."""
    width, height = page.right - page.left, page.top - page.bottom
    if width < STAMP_WIDTH + 2 * MARGIN or height < STAMP_HEIGHT + 2 * MARGIN:
        raise InvalidSigningRequest("the page is too small for a visible stamp; sign invisibly instead")
    shift = slot * (STAMP_HEIGHT + STAMP_GAP)
    if height < STAMP_HEIGHT + 2 * MARGIN + shift:
        raise InvalidSigningRequest("no room left on the page for another stamp; sign invisibly instead")
    if position in (StampPosition.BOTTOM_LEFT, StampPosition.TOP_LEFT):
        x1 = page.left + MARGIN
    else:
        x1 = page.right - MARGIN - STAMP_WIDTH
    if position in (StampPosition.BOTTOM_LEFT, StampPosition.BOTTOM_RIGHT):
        y1 = page.bottom + MARGIN + shift
    else:
        y1 = page.top - MARGIN - STAMP_HEIGHT - shift
    return round(x1), round(y1), round(x1 + STAMP_WIDTH), round(y1 + STAMP_HEIGHT)


def stamp_style(
    spec: StampSpec, *, signing_time: datetime, reason: str | None, location: str | None
) -> tuple[TextStampStyle, dict[str, str]]:
    """The pyHanko stamp style and its text parameters.

    User-supplied values go into the parameters, never into the template, so a ``%`` in
    a name is printed as it is.
    """
    shown = (spec.time or signing_time).astimezone(UTC)
    params = {
        "name": printable(spec.signer_name),
        "time": shown.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    params["heading"] = printable(spec.heading)
    lines = ["%(heading)s", "%(name)s", "%(time)s"]
    if reason:
        params["reason"] = printable(reason)
        lines.append("Reason: %(reason)s")
    if location:
        params["location"] = printable(location)
        lines.append("Location: %(location)s")
    text_box = TextBoxStyle(font=_COURIER, font_size=9, leading=11)
    template = "\n".join(lines)
    if spec.qr_url is None:
        return TextStampStyle(stamp_text=template, text_box_style=text_box, border_width=1), params
    params["url"] = spec.qr_url
    return QRStampStyle(stamp_text=template, text_box_style=text_box, border_width=1, innsep=4), params


def printable(text: str) -> str:
    """``text`` reduced to what the stamp's WinAnsi font can show, on one line."""
    text = " ".join(text.split())
    if len(text) > MAX_TEXT:
        text = text[: MAX_TEXT - 1] + "…"
    out = []
    for char in text:
        if _winansi_safe(char):
            out.append(char)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        out.append(base if base and all(_winansi_safe(c) for c in base) else "?")
    return "".join(out)


def _winansi_safe(char: str) -> bool:
    # Printable in WinAnsi (Windows-1252): no control codes, and not the invisible
    # no-break space and soft hyphen.
    if ord(char) < 0x20 or char in "\x7f\xa0\xad":
        return False
    try:
        char.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


class _WinAnsiCourier(SimpleFontEngine):
    """pyHanko's Courier, with the text written in the font's own WinAnsi encoding.

    pyHanko's engine writes text strings in PDFDocEncoding, which differs from WinAnsi in
    0x80-0x9F: Š, Ž, š, ž, Œ, €, dashes and curly quotes came out as other glyphs."""

    def shape(self, txt: str) -> ShapeResult:
        data = txt.encode("cp1252")
        escaped = data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
        return ShapeResult(
            graphics_ops=b"(" + escaped + b") Tj", x_advance=len(txt) * self.avg_width, y_advance=0
        )


class _WinAnsiCourierFactory(SimpleFontEngineFactory):
    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: object = None) -> SimpleFontEngine:
        return _WinAnsiCourier(writer, self.name, self.avg_width, self.meta)


_COURIER = _WinAnsiCourierFactory("Courier", 0.6, COURIER_META)
