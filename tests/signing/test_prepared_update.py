"""The prepared file is only the incremental update; the digest covers the whole document."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields

from signing import InvalidDocument, Level, async_prepare
from tests.conftest import IssuedCitizen
from tests.signing.conftest import Trust, make_pdf, run


@pytest.mark.parametrize("curve", ["p256", "p384"])
def test_the_digest_is_over_the_byte_range_of_original_and_update(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path, curve: str
) -> None:
    source = make_pdf(tmp_path / "in.pdf", pages=3)
    workdir = tmp_path / "work"
    workdir.mkdir()
    prepared = run(
        async_prepare(
            source, workdir, signer_certificate=signers[curve].der, chain=trust.chain, level=Level.B_B
        )
    )
    original = source.read_bytes()
    update = prepared.prepared_path.read_bytes()
    assert prepared.source_size == len(original) and prepared.prepared_size == len(update)
    assert not update.startswith(b"%PDF")  # the original is not copied

    whole = original + update
    start, end = prepared.reserved_region_start, prepared.reserved_region_end
    assert whole[start : start + 1] == b"<" and whole[end - 1 : end] == b">"
    byte_range = f"/ByteRange [0 {start} {end} {len(whole) - end}]".encode()
    assert byte_range in update
    expected = hashlib.new(prepared.hash_algorithm.value, whole[:start] + whole[end:]).digest()
    assert prepared.document_digest == expected

    joined = tmp_path / "joined.pdf"
    joined.write_bytes(whole)
    with joined.open("rb") as stream:
        reader = PdfFileReader(stream, strict=True)
        assert reader.xrefs.total_revisions == 2
        names = [name for name, _value, _ref in enumerate_sig_fields(reader, filled_status=None)]
        assert names == [prepared.field_name]


def test_the_hash_of_a_refused_document_stops(
    trust: Trust, signers: dict[str, IssuedCitizen], tmp_path: Path
) -> None:
    """The original is hashed beside the parse; when the parse refuses it, the hashing
    thread is not left running."""
    source = tmp_path / "letter.pdf"
    with source.open("wb") as stream:  # 256 MB of (sparse) nothing: not a PDF at all
        stream.truncate(256 << 20)
    workdir = tmp_path / "work"
    workdir.mkdir()
    with pytest.raises(InvalidDocument, match="not a PDF"):
        run(async_prepare(source, workdir, signer_certificate=signers["p256"].der, chain=trust.chain))
    assert not [thread for thread in threading.enumerate() if thread.name == "signing-hash"]
    assert list(workdir.iterdir()) == []
