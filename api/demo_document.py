"""The demo relying party's sample document: a one-page A4 PDF written by hand.

Small enough to write without a PDF library, and the demo needs nothing more: a title,
a few lines of text, the standard Helvetica font in WinAnsi encoding (which covers
Estonian letters).
"""

from __future__ import annotations

from datetime import date


def _text(value: str) -> bytes:
    encoded = value.encode("cp1252", errors="replace")
    return b"(" + encoded.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def sample_pdf(*, title: str, lines: list[str], today: date) -> bytes:
    """An A4 page with ``title`` and ``lines``; leaves the lower part free for stamps."""
    content = [b"BT", b"/F1 20 Tf", b"56 770 Td", _text(title) + b" Tj", b"/F1 12 Tf", b"0 -36 Td"]
    for line in [*lines, "", today.isoformat()]:
        content += [_text(line) + b" Tj", b"0 -18 Td"]
    content.append(b"ET")
    stream = b"\n".join(content)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += str(number).encode() + b" 0 obj\n" + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 " + str(len(objects) + 1).encode() + b"\n0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += b"trailer\n<< /Size " + str(len(objects) + 1).encode() + b" /Root 1 0 R >>\n"
    out += b"startxref\n" + str(xref).encode() + b"\n%%EOF\n"
    return bytes(out)
