"""The visible stamp: rendered by poppler, its QR code read back by zxing-cpp."""

from __future__ import annotations

import subprocess
from pathlib import Path

import zxingcpp

from signing import Level, StampPosition, StampSpec
from signing.stamp import printable
from tests.conftest import IssuedCitizen
from tests.signing.conftest import Trust, make_pdf, sign_digest
from tests.signing.witnesses import pdfsig

URL = "https://eid.example/v/1/eyJhbGciOiJFUzI1NiJ9.eyJzIjoiNDk0MDMxMzY1MjYifQ.c2lnbmF0dXJl"
DPI = 150


def render(path: Path, page: int, tmp_path: Path) -> tuple[int, int, memoryview]:
    """Page ``page`` (1-based) as an 8-bit grey image. PGM rather than PNG: it needs no
    image library to read."""
    stem = tmp_path / f"page-{page}"
    subprocess.run(
        [
            "pdftoppm",
            "-gray",
            "-r",
            str(DPI),
            "-f",
            str(page),
            "-l",
            str(page),
            "-singlefile",
            str(path),
            str(stem),
        ],
        check=True,
        timeout=60,
    )
    data = stem.with_suffix(".pgm").read_bytes()
    magic, width, height, maxval = data.split(maxsplit=4)[:4]
    assert (magic, maxval) == (b"P5", b"255")
    w, h = int(width), int(height)
    return w, h, memoryview(data[len(data) - w * h :]).cast("B", (h, w))


def qr_codes(path: Path, page: int, tmp_path: Path) -> list[tuple[str, float, float]]:
    """The QR codes on a page: text and centre as fractions of the page width and height."""
    width, height, image = render(path, page, tmp_path)
    found = []
    for barcode in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode):
        corners = barcode.position
        xs = [corners.top_left.x, corners.top_right.x, corners.bottom_left.x, corners.bottom_right.x]
        ys = [corners.top_left.y, corners.top_right.y, corners.bottom_left.y, corners.bottom_right.y]
        found.append((barcode.text, sum(xs) / 4 / width, sum(ys) / 4 / height))
    return found


def _sign(
    trust: Trust, citizen: IssuedCitizen, source: Path, tmp_path: Path, stamp: StampSpec | None
) -> Path:
    prepared = trust.prepare(
        source,
        tmp_path / "work",
        citizen.der,
        level=Level.B_T,
        stamp=stamp,
        reason="Kinnitan avalduse",
        location="Tallinn",
    )
    return trust.finish(prepared, sign_digest(citizen, prepared), tmp_path / "out.pdf")


def test_qr_code_in_the_default_place_decodes_to_the_url(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path
) -> None:
    source = make_pdf(tmp_path / "in.pdf", pages=2)
    out = _sign(
        trust, signers["p256"], source, tmp_path, StampSpec(signer_name="Mari-Liis Männik", qr_url=URL)
    )
    assert qr_codes(out, 1, tmp_path) == []
    [(text, x, y)] = qr_codes(out, 2, tmp_path)
    assert text == URL
    assert x > 0.5 and y > 0.75  # last page, bottom right
    assert "Signature Validation: Signature is Valid." in pdfsig(nss_db, out)[0]


def test_stamp_on_a_chosen_page_and_corner(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    source = make_pdf(tmp_path / "in.pdf", pages=3)
    stamp = StampSpec(signer_name="Jaak-Kristjan Jõeorg", qr_url=URL, page=0, position=StampPosition.TOP_LEFT)
    out = _sign(trust, signers["p384"], source, tmp_path, stamp)
    [(text, x, y)] = qr_codes(out, 1, tmp_path)
    assert text == URL and x < 0.5 and y < 0.25
    assert qr_codes(out, 3, tmp_path) == []


def test_invisible_signature_has_no_stamp(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    source = make_pdf(tmp_path / "in.pdf")
    out = _sign(trust, signers["p256"], source, tmp_path, None)
    before = render(source, 1, tmp_path)[2].tobytes()
    assert render(out, 1, tmp_path)[2].tobytes() == before


def test_stamp_text_is_what_the_font_can_show() -> None:
    assert printable("Mari-Liis Männik") == "Mari-Liis Männik"
    assert printable("Jaak-Kristjan Jõeorg") == "Jaak-Kristjan Jõeorg"
    assert printable("Šarlota Žukova") == "Šarlota Žukova"
    assert printable("Rūta Kazlauskaitė") == "Ruta Kazlauskaite"
    assert printable("Дмитрий  \n Иванов") == "??????? ??????"
    assert printable("100% sure") == "100% sure"
    assert printable("x" * 500).endswith("x…") and len(printable("x" * 500)) == 120


def test_stamp_text_reads_back_in_full_unicode(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    """poppler's pdftotext reads the stamp's text back: the letters of Estonian names
    (õ ä ö ü š ž, capitals too) and WinAnsi punctuation, through the font's encoding."""
    name = "Šarlota-Žanna Õunapuu-Äär (Üüdi) – “Žürii”"
    stamp = StampSpec(signer_name=name, qr_url=URL)
    out = _sign(trust, signers["p256"], make_pdf(tmp_path / "in.pdf"), tmp_path, stamp)
    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert name in text
    assert "Location: Tallinn" in text


def test_stacked_stamps_do_not_overlap_and_run_out_of_room_clearly() -> None:
    import pytest

    from signing._document import PageBox
    from signing.errors import InvalidSigningRequest
    from signing.stamp import stamp_rectangle

    a4 = PageBox(left=0, bottom=0, right=595, top=842, rotate=0)
    for position in StampPosition:
        boxes = [stamp_rectangle(a4, position, slot) for slot in range(8)]
        for lower, upper in zip(boxes, boxes[1:], strict=False):
            assert lower[0] == upper[0]  # same column
            assert lower[3] <= upper[1] or upper[3] <= lower[1]  # no vertical overlap
        assert all(x1 >= 0 and x2 <= 595 and y1 >= 0 and y2 <= 842 for x1, y1, x2, y2 in boxes)
    with pytest.raises(InvalidSigningRequest, match="no room left"):
        stamp_rectangle(a4, StampPosition.BOTTOM_RIGHT, 9)
