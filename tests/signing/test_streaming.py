"""Large documents are signed without being held in memory, and the fast paths give the
same bytes as pyHanko's own: a ~100 MB document at B-LTA checked by pdfsig and pyHanko's
validator, the signed attributes beside pyHanko's, the kernel copy beside a plain one."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tracemalloc
import zlib
from pathlib import Path

import pytest
from pyhanko.sign.signers import ExternalSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from keys.keystore import HashAlgorithm
from signing import Level, Prepared, async_finish, async_prepare
from signing._attributes import async_signed_attributes
from signing._streams import CHUNK_SIZE, copy_stream
from signing.validation import load_certificates
from tests.conftest import IssuedCitizen
from tests.signing.conftest import Trust, run, sign_digest
from tests.signing.witnesses import async_pyhanko_report, pdfsig

MB = 1 << 20


def big_pdf(path: Path, *, pages: int, image_bytes: int) -> Path:
    """``pages`` A4 pages, each showing its own incompressible greyscale image of about
    ``image_bytes``, written object by object (never whole in memory)."""
    side = int(image_bytes**0.5)
    offsets: list[int] = []
    with path.open("wb") as out:

        def put(body: bytes, stream: bytes | None = None) -> None:
            offsets.append(out.tell())
            out.write(b"%d 0 obj\n" % len(offsets) + body)
            if stream is not None:
                out.write(b"\nstream\n" + stream + b"\nendstream")
            out.write(b"\nendobj\n")

        out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        put(b"<< /Type /Catalog /Pages 2 0 R >>")
        kids = " ".join(f"{3 + 3 * i} 0 R" for i in range(pages)).encode()
        put(b"<< /Type /Pages /Count %d /Kids [%s] >>" % (pages, kids))
        for i in range(pages):
            page = 3 + 3 * i
            put(
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
                b"/Resources << /XObject << /Im0 %d 0 R >> >> >>" % (page + 1, page + 2)
            )
            content = zlib.compress(b"q 400 400 100 100 cm /Im0 Do Q")
            put(b"<< /Length %d /Filter /FlateDecode >>" % len(content), content)
            pixels = zlib.compress(os.urandom(side * side), 1)
            put(
                b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>" % (side, side, len(pixels)),
                pixels,
            )
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
        out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
        out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref))
    return path


@pytest.fixture(scope="module")
def hundred_mb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return big_pdf(tmp_path_factory.mktemp("big") / "big.pdf", pages=100, image_bytes=MB)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def test_a_100_mb_document_signs_at_b_lta_with_little_memory(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, hundred_mb: Path, tmp_path: Path
) -> None:
    citizen = signers["p256"]
    assert hundred_mb.stat().st_size > 100 * MB
    source_hash = _sha256(hundred_mb)
    workdir = tmp_path / "work"
    workdir.mkdir()
    out = tmp_path / "out.pdf"

    # Python allocations only: a copy of the document anywhere in Python (reading it into
    # bytes, a BytesIO, a 100 MB bytearray) would show as 100 MB here.
    tracemalloc.start()
    try:
        prepared = run(
            async_prepare(
                hundred_mb, workdir, signer_certificate=citizen.der, chain=trust.chain, level=Level.B_LTA
            )
        )
        _, prepare_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        run(
            async_finish(
                prepared,
                sign_digest(citizen, prepared),
                out=out,
                timestamper=trust.timestamper(),
                validation=trust.revocation(),
            )
        )
        _, finish_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prepare_peak < 16 * MB, prepare_peak
    assert finish_peak < 16 * MB, finish_peak

    # The prepared file is only the update after the original (which it does not copy),
    # and the original is the untouched first revision of the output.
    size = hundred_mb.stat().st_size
    assert prepared.source_path == hundred_mb and prepared.source_size == size
    assert prepared.prepared_size < 64 * 1024
    for path in (out,):
        with path.open("rb") as stream:
            digest = hashlib.sha256()
            remaining = size
            while remaining and (chunk := stream.read(min(CHUNK_SIZE, remaining))):
                digest.update(chunk)
                remaining -= len(chunk)
        assert digest.hexdigest() == source_hash
    assert _sha256(hundred_mb) == source_hash

    report = pdfsig(nss_db, out)
    assert "Signature Validation: Signature is Valid." in report[0]
    assert "Certificate Validation: Certificate is Trusted." in report[0]
    assert len(report) == 2 and "Total document signed" in report[1]
    checked = run(async_pyhanko_report(out, trust.root_der))
    assert checked.status.intact and checked.status.valid and checked.status.trusted
    assert checked.level == "B-LTA"


def test_finishing_twice_gives_two_valid_files_and_leaves_the_prepared_file(
    trust: Trust, signers: dict[str, IssuedCitizen], nss_db: str, hundred_mb: Path, tmp_path: Path
) -> None:
    """The copy runs beside the validation; the prepared file is only read, so a retry
    finishes it again, and nothing but the outputs is left next to them."""
    citizen = signers["p256"]
    workdir = tmp_path / "work"
    workdir.mkdir()
    prepared = run(
        async_prepare(hundred_mb, workdir, signer_certificate=citizen.der, chain=trust.chain, level=Level.B_B)
    )
    stored = Prepared.from_bytes(prepared.to_bytes())
    before = _sha256(prepared.prepared_path)
    outs = [tmp_path / "first.pdf", tmp_path / "second.pdf"]
    for out in outs:
        run(
            async_finish(
                stored,
                sign_digest(citizen, stored),
                out=out,
                timestamper=None,
                validation=trust.revocation(),
            )
        )
        assert _sha256(prepared.prepared_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.pdf", "second.pdf", "work"]
    for out in outs:
        assert out.stat().st_size == prepared.document_size
        report = pdfsig(nss_db, out)
        assert len(report) == 1
        assert "Signature Validation: Signature is Valid." in report[0]
        assert "Total document signed" in report[0]


@pytest.mark.parametrize("curve", ["p256", "p384"])
def test_cached_signed_attributes_are_pyhankos(signers: dict[str, IssuedCitizen], curve: str) -> None:
    citizen = signers[curve]
    (cert,) = load_certificates([citizen.der], "signer")
    algorithm = {"p256": HashAlgorithm.SHA256, "p384": HashAlgorithm.SHA384}[curve]
    signer = ExternalSigner(cert, SimpleCertificateStore())  # type: ignore[no-untyped-call]

    async def both(digest: bytes) -> tuple[bytes, bytes]:
        ours = await async_signed_attributes(lambda: signer, citizen.der, algorithm, digest)
        theirs = await signer.signed_attrs(digest, algorithm.value, use_pades=True)
        return ours, bytes(theirs.dump())

    for seed in (b"first", b"second", b"third"):
        digest = hashlib.new(algorithm.value, seed).digest()
        ours, theirs = asyncio.run(both(digest))
        assert ours == theirs


def test_copy_stream_with_and_without_file_descriptors(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 17)
    source = tmp_path / "source"
    source.write_bytes(data)
    with source.open("rb") as stream, (tmp_path / "target").open("w+b") as target:
        target.write(b"head")
        stream.seek(5)  # the copy is of the whole source, wherever it stands
        assert copy_stream(stream, target) == len(data)
        assert target.tell() == 4 + len(data)
        target.write(b"tail")
        target.seek(0)
        assert target.read() == b"head" + data + b"tail"
    memory = io.BytesIO()
    memory.write(b"head")
    assert copy_stream(io.BytesIO(data), memory) == len(data)
    assert memory.getvalue() == b"head" + data
