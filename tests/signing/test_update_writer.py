"""Our own incremental update for invisible fields (``signing/_update.py``), checked by
pdfsig, pyHanko's validator and ``qpdf --check`` (``make system-deps`` installs qpdf): sources with a
cross-reference table and with a cross-reference stream, forms and annotations held
directly or indirectly, several signers in turn, and B-LTA on top."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from signing import Level, Prepared, async_finish, async_prepare
from tests.conftest import IssuedCitizen
from tests.signing.conftest import Trust, make_pdf, run, sign_digest
from tests.signing.witnesses import async_pyhanko_report, pdfsig


def _pdf(path: Path, *, stream_xrefs: bool, indirect: bool = False) -> Path:
    """Two pages; with ``indirect`` the first page has an indirect /Annots array holding a
    link, and the catalog an indirect /AcroForm with an indirect, empty /Fields array."""
    writer = PdfFileWriter(stream_xrefs=stream_xrefs)
    for number in (1, 2):
        content = f"BT /F1 14 Tf 72 760 Td (Page {number}) Tj ET".encode()
        stream = writer.add_object(generic.StreamObject(stream_data=content))
        writer.insert_page(PageObject(contents=stream, media_box=(0, 0, 595, 842)))
    if indirect:
        link = writer.add_object(
            generic.DictionaryObject(
                {
                    pdf_name("/Type"): pdf_name("/Annot"),
                    pdf_name("/Subtype"): pdf_name("/Link"),
                    pdf_name("/Rect"): generic.ArrayObject([generic.NumberObject(v) for v in (0, 0, 10, 10)]),
                }
            )
        )
        page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
        page_ref.get_object()[pdf_name("/Annots")] = writer.add_object(generic.ArrayObject([link]))
        writer.update_container(page_ref.get_object())
        fields = writer.add_object(generic.ArrayObject())
        writer.root[pdf_name("/AcroForm")] = writer.add_object(
            generic.DictionaryObject({pdf_name("/Fields"): fields})
        )
        writer.update_root()
    buffer = io.BytesIO()
    writer.write(buffer)
    path.write_bytes(buffer.getvalue())
    return path


def _sign(
    trust: Trust, citizen: IssuedCitizen, source: Path, out: Path, level: Level = Level.B_B
) -> tuple[Prepared, bytes]:
    prepared = trust.prepare(source, out.parent / f"work-{out.stem}", citizen.der, level=level)
    update = prepared.prepared_path.read_bytes()
    stored = Prepared.from_bytes(prepared.to_bytes())
    trust.finish(stored, sign_digest(citizen, stored), out)
    return prepared, update


def _qpdf_check(path: Path) -> None:
    assert shutil.which("qpdf") is not None, "qpdf is missing: run make system-deps"
    result = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No syntax or stream encoding errors found" in result.stdout


async def _all_intact(path: Path, root_der: bytes) -> list[str]:
    """pyHanko's verdict on every signature: each intact and valid; the modification
    level of what came after it."""
    from asn1crypto import x509

    levels = []
    with path.open("rb") as stream:
        reader = PdfFileReader(stream)
        for embedded in reader.embedded_regular_signatures:
            context = ValidationContext(trust_roots=[x509.Certificate.load(root_der)], allow_fetching=False)
            status = await async_validate_pdf_signature(embedded, signer_validation_context=context)
            assert status.intact and status.valid, status.pretty_print_details()
            assert status.docmdp_ok is not False
            levels.append(status.modification_level.name if status.modification_level else "NONE")
    return levels


@pytest.mark.parametrize("stream_xrefs", [False, True], ids=["xref-table", "xref-stream"])
@pytest.mark.parametrize("indirect", [False, True], ids=["direct", "indirect"])
def test_invisible_field_is_our_update_and_every_witness_accepts_it(
    trust: Trust,
    signers: dict[str, IssuedCitizen],
    nss_db: str,
    tmp_path: Path,
    stream_xrefs: bool,
    indirect: bool,
) -> None:
    source = _pdf(tmp_path / "in.pdf", stream_xrefs=stream_xrefs, indirect=indirect)
    out = tmp_path / "out.pdf"
    prepared, update = _sign(trust, signers["p256"], source, out)
    # Ours, not pyHanko's writer: that one would also refresh the metadata.
    assert b"pyHanko" not in update and b"/Metadata" not in update
    assert (b"/Type /XRef" in update) == stream_xrefs
    assert (b"\ntrailer\n" in update) == (not stream_xrefs)
    assert out.read_bytes()[: prepared.source_size] == source.read_bytes()

    report = pdfsig(nss_db, out)
    assert len(report) == 1
    assert "Signature Validation: Signature is Valid." in report[0]
    assert "Certificate Validation: Certificate is Trusted." in report[0]
    assert "Total document signed" in report[0]
    checked = run(async_pyhanko_report(out, trust.root_der))
    assert checked.status.bottom_line and checked.level == "B-B"
    _qpdf_check(out)

    with out.open("rb") as stream:
        reader = PdfFileReader(stream)
        page = reader.root["/Pages"]["/Kids"][0]
        annots = page["/Annots"]
        assert len(annots) == (2 if indirect else 1)
        assert annots[-1]["/T"] == prepared.field_name == "Signature1"
        assert annots[-1]["/P"].get_object() is not None
        assert reader.root["/AcroForm"]["/SigFlags"] == 3
        assert [f.get_object()["/T"] for f in reader.root["/AcroForm"]["/Fields"]] == ["Signature1"]


@pytest.mark.parametrize("stream_xrefs", [False, True], ids=["xref-table", "xref-stream"])
def test_three_signers_in_turn_keep_the_earlier_signatures_valid(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path, stream_xrefs: bool
) -> None:
    current = _pdf(tmp_path / "in.pdf", stream_xrefs=stream_xrefs)
    for number, curve in enumerate(("p256", "p384", "p256"), start=1):
        out = tmp_path / f"signed-{number}.pdf"
        prepared, update = _sign(trust, signers[curve], current, out)
        assert b"pyHanko" not in update
        assert prepared.field_name == f"Signature{number}"
        current = out
    report = pdfsig(nss_db, current)
    assert len(report) == 3
    for lines in report:
        assert "Signature Validation: Signature is Valid." in lines
    assert "Total document signed" in report[2]
    # Each later update only adds a signature field: form filling at most.
    assert run(_all_intact(current, trust.root_der)) == ["FORM_FILLING", "FORM_FILLING", "NONE"]
    _qpdf_check(current)


def test_b_lta_over_our_update(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path
) -> None:
    source = _pdf(tmp_path / "in.pdf", stream_xrefs=True)
    out = tmp_path / "out.pdf"
    _prepared, update = _sign(trust, signers["p384"], source, out, Level.B_LTA)
    assert b"pyHanko" not in update
    checked = run(async_pyhanko_report(out, trust.root_der))
    assert checked.status.bottom_line and checked.level == "B-LTA"
    assert checked.document_timestamps == 1
    report = pdfsig(nss_db, out)
    assert len(report) == 2 and "Total document signed" in report[1]
    _qpdf_check(out)


def test_a_source_without_a_final_newline_and_with_a_reason(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, tmp_path: Path
) -> None:
    source = make_pdf(tmp_path / "in.pdf")
    source.write_bytes(source.read_bytes().rstrip())
    workdir = tmp_path / "work"
    workdir.mkdir()
    citizen = signers["p256"]
    prepared = run(
        async_prepare(
            source,
            workdir,
            signer_certificate=citizen.der,
            chain=trust.chain,
            level=Level.B_B,
            reason="Kinnitan (lepingu) sisu",
            location="Tallinn",
        )
    )
    assert prepared.prepared_path.read_bytes().startswith(b"\n")
    out = tmp_path / "out.pdf"
    run(
        async_finish(
            prepared, sign_digest(citizen, prepared), out=out, timestamper=None, validation=trust.revocation()
        )
    )
    report = pdfsig(nss_db, out)
    assert "Signature Validation: Signature is Valid." in report[0]
    assert "Total document signed" in report[0]
    with out.open("rb") as stream:
        signature = PdfFileReader(stream).embedded_signatures[0].sig_object
        assert signature["/Reason"] == "Kinnitan (lepingu) sisu"
        assert signature["/Location"] == "Tallinn"
    _qpdf_check(out)
