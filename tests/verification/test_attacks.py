"""The Ruhr-University Bochum attack classes on PDF signatures, built here from real
signed documents, and the check of the report that catches each.

Universal signature forgery (USF), incremental saving attacks (ISA), signature wrapping
(SWA), shadow attacks (hide, replace, hide-and-replace) and certification attacks (evil
annotations, sneaky signatures). Every document is first shown to pass untouched, so
the failure is the attack's doing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign.fields import MDPPerm

from keys.issuance import Purpose
from signing import Level
from tests.conftest import IssuedCitizen, ServiceEnv, issue_citizen
from tests.signing.conftest import Trust, make_pdf
from tests.signing.conftest import trust as trust  # noqa: F401 - a fixture, used by name
from tests.verification._pdfs import (
    incremental,
    provider,
    pyhanko_sign,
    run,
    self_made_ca,
    sign,
    simple_signer,
    text_stream,
    trust_config,
)
from verification import DocumentReport, Indication, SignatureReport, async_validate_document

BYTE_RANGE = re.compile(rb"/ByteRange\s*\[([\d\s]+)\]")
CONTENTS = re.compile(rb"/Contents\s*<([0-9a-fA-F]+)>")


@pytest.fixture(scope="module")
def citizen(service_env: ServiceEnv) -> IssuedCitizen:
    return issue_citizen(service_env, Purpose.SIGNING)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("attacks")


@pytest.fixture(scope="module")
def signed(trust: Trust, citizen: IssuedCitizen, workdir: Path) -> Path:
    """A B-B document signed through the service: the victim of the byte surgery."""
    return sign(trust, citizen, make_pdf(workdir / "plain.pdf"), workdir / "signed.pdf", Level.B_B)


@pytest.fixture(scope="module")
def signed_lta(trust: Trust, citizen: IssuedCitizen, workdir: Path) -> Path:
    return sign(trust, citizen, make_pdf(workdir / "plain-lta.pdf"), workdir / "signed-lta.pdf", Level.B_LTA)


def validate(trust: Trust, path: Path) -> DocumentReport:
    return run(async_validate_document(path, trust=trust_config(trust), revocation=provider(trust)))


def only(report: DocumentReport) -> SignatureReport:
    assert report.signature_count == 1, report.to_json()
    return report.signatures[0]


def caught(trust: Trust, path: Path, check: str, sub_indication: str = "FORMAT_FAILURE") -> SignatureReport:
    report = validate(trust, path)
    assert report.indication is not Indication.TOTAL_PASSED, report.to_json()
    signature = only(report)
    assert signature.indication is not Indication.TOTAL_PASSED
    assert signature.caught_by and signature.caught_by[-1] == check, signature
    assert signature.sub_indication == sub_indication, signature
    assert signature.errors
    return signature


def surgery(source: Path, out: Path, edit: Callable[[bytes], bytes]) -> Path:
    data = source.read_bytes()
    changed = edit(data)
    assert changed != data and len(changed) == len(data) or changed != data
    out.write_bytes(changed)
    return out


def same_length(old: bytes, new: bytes) -> bytes:
    assert len(new) <= len(old), (old, new)
    return new + b" " * (len(old) - len(new))


def byte_range(data: bytes) -> tuple[re.Match[bytes], list[int]]:
    match = BYTE_RANGE.search(data)
    assert match is not None
    return match, [int(v) for v in match.group(1).split()]


def with_byte_range(data: bytes, values: list[int]) -> bytes:
    """The /ByteRange array rewritten in place. Signers leave spaces after the array (its
    final width is not known when it is written); a longer array may take them."""
    match, _ = byte_range(data)
    padding = len(data[match.end() :]) - len(data[match.end() :].lstrip(b" "))
    inner = same_length(
        match.group(1) + b"]" + b" " * padding, b" ".join(str(v).encode() for v in values) + b"]"
    )
    return data[: match.start(1)] + inner + data[match.end() + padding :]


def test_the_victims_pass_untouched(trust: Trust, signed: Path, signed_lta: Path) -> None:
    assert validate(trust, signed).indication is Indication.TOTAL_PASSED
    assert validate(trust, signed_lta).indication is Indication.TOTAL_PASSED


# Universal signature forgery.


def test_usf_no_contents(trust: Trust, signed: Path, workdir: Path) -> None:
    doc = surgery(
        signed, workdir / "usf-no-contents.pdf", lambda d: d.replace(b"/Contents <", b"/Xontents <", 1)
    )
    caught(trust, doc, "structure")


def test_usf_zero_contents(trust: Trust, signed: Path, workdir: Path) -> None:
    def zero(data: bytes) -> bytes:
        match = CONTENTS.search(data)
        assert match is not None
        return data[: match.start(1)] + b"0" * len(match.group(1)) + data[match.end(1) :]

    caught(trust, surgery(signed, workdir / "usf-zero.pdf", zero), "structure")


def test_usf_no_byte_range(trust: Trust, signed: Path, workdir: Path) -> None:
    doc = surgery(signed, workdir / "usf-no-range.pdf", lambda d: d.replace(b"/ByteRange", b"/XyteRange", 1))
    caught(trust, doc, "structure")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda r: [0, 0, 0, 0],  # covers nothing
        lambda r: [r[0], r[1], r[2]],  # three values
        lambda r: [1, r[1] - 1, r[2], r[3]],  # does not start at 0
        lambda r: [0, r[1], r[2], r[3] + 1000],  # past the end of the file
    ],
    ids=["zeros", "three-values", "not-from-start", "past-end"],
)
def test_usf_broken_byte_range(
    trust: Trust, signed: Path, workdir: Path, mangle: Callable[[list[int]], list[int]]
) -> None:
    _, values = byte_range(signed.read_bytes())
    doc = surgery(signed, workdir / "usf-range.pdf", lambda d: with_byte_range(d, mangle(values)))
    signature = only(validate(trust, doc))
    assert signature.indication is Indication.TOTAL_FAILED, signature
    assert signature.caught_by[-1] in ("byte_range", "structure"), signature


def test_usf_byte_range_not_covering_the_file(trust: Trust, signed: Path, workdir: Path) -> None:
    """The range stops short: the last bytes (here, the signed revision's trailer) are
    outside it, whatever they hold."""
    _, (start1, length1, start2, length2) = byte_range(signed.read_bytes())
    doc = surgery(
        signed,
        workdir / "usf-short.pdf",
        lambda d: with_byte_range(d, [start1, length1, start2, length2 - 40]),
    )
    caught(trust, doc, "byte_range")


def test_one_altered_byte_is_a_hash_failure(trust: Trust, signed: Path, workdir: Path) -> None:
    doc = surgery(signed, workdir / "one-byte.pdf", lambda d: d.replace(b"vabadena", b"vabadenA", 1))
    signature = caught(trust, doc, "integrity", "HASH_FAILURE")
    assert signature.indication is Indication.TOTAL_FAILED


# Incremental saving attacks.


def _new_page_content(writer: Any) -> None:
    page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
    page = page_ref.get_object()
    page["/Contents"] = writer.add_object(text_stream("Pay 1 000 000 EUR to Mallory"))
    writer.mark_update(page_ref)


def test_isa_new_page_content(trust: Trust, signed: Path, signed_lta: Path, workdir: Path) -> None:
    for victim in (signed, signed_lta):
        signature = caught(
            trust, incremental(victim, workdir / f"isa-{victim.stem}.pdf", _new_page_content), "modifications"
        )
        assert signature.coverage is not None and not signature.coverage.whole_document
        assert [r.change for r in signature.coverage.later_revisions][-1] == "other"


def test_isa_new_objects(trust: Trust, signed: Path, workdir: Path) -> None:
    """A whole new page and a document-level JavaScript action."""

    def add(writer: Any) -> None:
        pages = writer.root["/Pages"]
        page = PageObject(
            contents=writer.add_object(text_stream("Appendix: new terms")), media_box=(0, 0, 595, 842)
        )
        pages["/Kids"].append(writer.add_object(page))
        pages["/Count"] = generic.NumberObject(2)
        writer.update_container(pages)
        writer.root["/OpenAction"] = writer.add_object(
            generic.DictionaryObject({generic.pdf_name("/S"): generic.pdf_name("/JavaScript")})
        )
        writer.update_root()

    caught(trust, incremental(signed, workdir / "isa-objects.pdf", add), "modifications")


def test_isa_appended_without_cross_reference(trust: Trust, signed: Path, workdir: Path) -> None:
    """New objects and a trailer appended, the last startxref still pointing at the signed
    revision: pyHanko's reader never sees the objects, a repairing viewer might."""
    data = signed.read_bytes()
    startxref = re.findall(rb"startxref\s+(\d+)", data)[-1]
    appended = (
        b"\n4 0 obj\n<</Length 44>>stream\nBT /F1 24 Tf 72 700 Td (Pay Mallory) Tj ET\nendstream\nendobj\n"
        b"trailer\n<</Size 30>>\nstartxref\n" + startxref + b"\n%%EOF\n"
    )
    doc = workdir / "isa-trailer.pdf"
    doc.write_bytes(data + appended)
    caught(trust, doc, "appended_data")


# Signature wrapping.


def test_swa_byte_range_points_at_moved_data(trust: Trust, signed: Path, workdir: Path) -> None:
    """The signed second part is copied to the end of the file and the byte range points
    there; the original place is free for other content. The digest still matches."""
    data = signed.read_bytes()
    _, (start1, length1, start2, length2) = byte_range(data)
    moved = data[start2 : start2 + length2]
    wrapped = with_byte_range(data, [start1, length1, len(data) + 1, length2])
    doc = workdir / "swa.pdf"
    doc.write_bytes(wrapped + b"\n" + moved)
    signature = caught(trust, doc, "byte_range")
    assert "gap" in signature.errors[0] or "where" in signature.errors[0]


# Shadow attacks: content prepared before signing, revealed by a later update.


def shadow_source(path: Path) -> tuple[Path, dict[str, generic.Reference]]:
    """A harmless-looking page with three shadows: a hidden optional-content layer, a form
    XObject drawn on the page, and an evil content stream that nothing draws yet."""
    writer = PdfFileWriter()
    font = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Font"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
            generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
        }
    )
    font_ref = writer.add_object(font)
    resources_fonts = generic.DictionaryObject({generic.pdf_name("/F1"): font_ref})
    ocg = writer.add_object(
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/OCG"),
                generic.pdf_name("/Name"): generic.TextStringObject("x"),
            }
        )
    )
    form = generic.StreamObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/XObject"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Form"),
            generic.pdf_name("/BBox"): generic.ArrayObject(
                [generic.NumberObject(v) for v in (0, 0, 595, 842)]
            ),
            generic.pdf_name("/Resources"): generic.DictionaryObject(
                {generic.pdf_name("/Font"): resources_fonts}
            ),
        },
        stream_data=b"BT /F1 18 Tf 72 600 Td (Amount: 100 EUR) Tj ET",
    )
    form_ref = writer.add_object(form)
    evil_ref = writer.add_object(text_stream("Amount: 100 000 EUR"))
    content = (
        b"BT /F1 18 Tf 72 760 Td (Contract) Tj ET /Fm1 Do "
        b"/OC /oc1 BDC BT /F1 18 Tf 72 500 Td (Hidden clause: all rights to Mallory) Tj ET EMC"
    )
    resources = generic.DictionaryObject(
        {
            generic.pdf_name("/Font"): resources_fonts,
            generic.pdf_name("/XObject"): generic.DictionaryObject({generic.pdf_name("/Fm1"): form_ref}),
            generic.pdf_name("/Properties"): generic.DictionaryObject({generic.pdf_name("/oc1"): ocg}),
        }
    )
    page = PageObject(
        contents=writer.add_object(generic.StreamObject(stream_data=content)),
        media_box=(0, 0, 595, 842),
        resources=resources,
    )
    writer.insert_page(page)
    writer.root["/OCProperties"] = generic.DictionaryObject(
        {
            generic.pdf_name("/OCGs"): generic.ArrayObject([ocg]),
            generic.pdf_name("/D"): generic.DictionaryObject(
                {generic.pdf_name("/OFF"): generic.ArrayObject([ocg])}
            ),
        }
    )
    # The evil stream has to be in the file when it is signed: park it in a harmless place.
    writer.root["/PieceInfo"] = generic.DictionaryObject({generic.pdf_name("/Stash"): evil_ref})
    import io

    buffer = io.BytesIO()
    writer.write(buffer)
    path.write_bytes(buffer.getvalue())
    return path, {"form": form_ref, "evil": evil_ref}


@pytest.fixture(scope="module")
def shadow(trust: Trust, citizen: IssuedCitizen, workdir: Path) -> tuple[Path, dict[str, generic.Reference]]:
    source, refs = shadow_source(workdir / "shadow-source.pdf")
    signed = sign(trust, citizen, source, workdir / "shadow-signed.pdf", Level.B_B)
    assert validate(trust, signed).indication is Indication.TOTAL_PASSED
    return signed, refs


def test_shadow_hide(trust: Trust, shadow: tuple[Path, dict[str, Any]], workdir: Path) -> None:
    """The hidden layer is switched on."""

    def reveal(writer: Any) -> None:
        writer.root["/OCProperties"]["/D"]["/OFF"] = generic.ArrayObject()
        writer.update_root()

    caught(trust, incremental(shadow[0], workdir / "shadow-hide.pdf", reveal), "modifications")


def test_shadow_replace(trust: Trust, shadow: tuple[Path, dict[str, Any]], workdir: Path) -> None:
    """The form XObject drawn on the page gets new content (the object is overridden)."""

    def replace(writer: Any) -> None:
        form_ref = writer.root["/Pages"]["/Kids"][0]["/Resources"]["/XObject"].raw_get("/Fm1")
        form = form_ref.get_object()
        new = generic.StreamObject(
            dict(form), stream_data=b"BT /F1 18 Tf 72 600 Td (Amount: 100 000 EUR) Tj ET"
        )
        del new["/Length"]
        writer.objects[(form_ref.generation, form_ref.idnum)] = new

    caught(trust, incremental(shadow[0], workdir / "shadow-replace.pdf", replace), "modifications")


def test_shadow_hide_and_replace(trust: Trust, shadow: tuple[Path, dict[str, Any]], workdir: Path) -> None:
    """The page is pointed at the evil stream that was signed along, unseen."""
    evil = shadow[1]["evil"]

    def swap(writer: Any) -> None:
        page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
        page_ref.get_object()["/Contents"] = generic.IndirectObject(evil.idnum, evil.generation, writer)
        writer.mark_update(page_ref)

    caught(trust, incremental(shadow[0], workdir / "shadow-swap.pdf", swap), "modifications")


# Certification attacks.


@pytest.fixture(scope="module", params=[MDPPerm.NO_CHANGES, MDPPerm.FILL_FORMS], ids=["P1", "P2"])
def certified(
    request: pytest.FixtureRequest, trust: Trust, citizen: IssuedCitizen, workdir: Path
) -> tuple[Path, MDPPerm]:
    permission: MDPPerm = request.param
    doc = pyhanko_sign(
        make_pdf(workdir / f"cert-{permission.value}.pdf"),
        workdir / f"certified-{permission.value}.pdf",
        simple_signer(citizen, trust),
        field="Certification",
        certify=True,
        permission=permission,
    )
    report = validate(trust, doc)
    assert report.indication is Indication.TOTAL_PASSED, report.to_json()
    return doc, permission


def test_evil_annotation_after_certification(
    trust: Trust, certified: tuple[Path, MDPPerm], workdir: Path
) -> None:
    def annotate(writer: Any) -> None:
        page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
        annotation = generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/Annot"),
                generic.pdf_name("/Subtype"): generic.pdf_name("/FreeText"),
                generic.pdf_name("/Rect"): generic.ArrayObject(
                    [generic.NumberObject(v) for v in (60, 740, 560, 790)]
                ),
                generic.pdf_name("/Contents"): generic.TextStringObject(
                    "VOID - replaced by the new contract"
                ),
                generic.pdf_name("/DA"): generic.TextStringObject("/Helv 24 Tf 0 g"),
            }
        )
        page_ref.get_object()["/Annots"] = generic.ArrayObject([writer.add_object(annotation)])
        writer.mark_update(page_ref)

    doc, permission = certified
    caught(trust, incremental(doc, workdir / f"evil-annot-{permission.value}.pdf", annotate), "modifications")


def test_sneaky_signature_after_certification(
    trust: Trust, certified: tuple[Path, MDPPerm], service_env: ServiceEnv, workdir: Path
) -> None:
    """A second signature, with a visible appearance over the page, added after the
    certification: P=1 forbids it outright; under P=2 a signature is an allowed change,
    but the sneaky signer's own signature does not pass, so the document does not."""
    doc, permission = certified
    mallory = self_made_ca().signer
    sneaky = pyhanko_sign(
        doc,
        workdir / f"sneaky-{permission.value}.pdf",
        mallory,
        field="Sneaky",
        box=(50, 700, 560, 800),
        attacker=True,
    )
    report = validate(trust, sneaky)
    assert report.indication is not Indication.TOTAL_PASSED, report.to_json()
    certification, added = report.signatures
    assert added.caught_by == ("certificate_chain",)
    later = certification.coverage.later_revisions if certification.coverage else ()
    assert [revision.change for revision in later] == ["new signature"]
    # pyHanko's diff policy refuses a new widget on the page after a certification
    # (only approval signatures may be followed by one), whatever P says.
    assert certification.indication is Indication.TOTAL_FAILED
    assert certification.caught_by[-1] == "modifications", certification


def test_invisible_signature_after_p1_certification(
    trust: Trust, certified: tuple[Path, MDPPerm], service_env: ServiceEnv, workdir: Path
) -> None:
    """An invisible approval signature by a trusted signer is an allowed kind of change
    (form filling), but P=1 allows no change at all."""
    doc, permission = certified
    other = issue_citizen(service_env, Purpose.SIGNING)
    approval = pyhanko_sign(
        doc,
        workdir / f"approval-after-{permission.value}.pdf",
        simple_signer(other, trust),
        field="Second",
        attacker=True,
    )
    report = validate(trust, approval)
    first, second = report.signatures
    assert second.indication is Indication.TOTAL_PASSED, second
    if permission is MDPPerm.NO_CHANGES:
        assert first.indication is Indication.TOTAL_FAILED
        assert first.caught_by[-1] in ("certification", "modifications"), first
    else:
        assert first.indication is Indication.TOTAL_PASSED, first
        assert report.indication is Indication.TOTAL_PASSED
