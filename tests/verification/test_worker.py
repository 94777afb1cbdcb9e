"""Validation in worker processes: the same report as in process, limits that hold, and
a pool that keeps working after a worker was killed.

The limit documents are real attacks on a parser: a decompression bomb in the
cross-reference stream (read before anything else) and a signed document followed by a
thousand legitimate-looking incremental updates (the modification analysis compares
each one with the signed revision).
"""

from __future__ import annotations

import io
import os
import re
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from keys.issuance import Purpose
from signing import Level
from tests.conftest import ServiceEnv, issue_citizen
from tests.signing.conftest import Trust, make_pdf
from tests.signing.conftest import trust as trust  # noqa: F401 - a fixture, used by name
from tests.verification._pdfs import provider, run, sign, trust_config
from verification import Indication, Limits, UnreadableDocument, WorkerPool, async_validate_document

MEMORY_MB = 256
TIMEOUT_SECONDS = 3.0


@pytest.fixture(scope="module")
def signed(trust: Trust, service_env: ServiceEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("worker")
    citizen = issue_citizen(service_env, Purpose.SIGNING)
    return sign(trust, citizen, make_pdf(directory / "in.pdf"), directory / "signed.pdf", Level.B_LTA)


@pytest.fixture(scope="module")
def pool(trust: Trust) -> Iterator[WorkerPool]:
    workers = WorkerPool(
        trust=trust_config(trust),
        limits=Limits(workers=1, timeout_seconds=TIMEOUT_SECONDS, memory_mb=MEMORY_MB),
    )
    yield workers
    workers.close()


def many_revisions(source: bytes, count: int) -> bytes:
    """``count`` incremental updates, each replacing the document information dictionary
    (an allowed change, so the analysis has to look at every one)."""
    reader = PdfFileReader(io.BytesIO(source))
    root = reader.trailer.raw_get("/Root")
    size = int(reader.trailer["/Size"])
    previous = int(re.findall(rb"startxref\s+(\d+)", source)[-1])
    out = bytearray(source)
    for number in range(count):
        offset = len(out) + 1
        out += f"\n{size} 0 obj\n<</Producer (revision {number})>>\nendobj\n".encode()
        xref = len(out)
        out += (
            f"xref\n{size} 1\n{offset:010d} 00000 n \ntrailer\n<</Size {size + 1} /Root {root.idnum} "
            f"{root.generation} R /Prev {previous} /Info {size} 0 R>>\nstartxref\n{xref}\n%%EOF\n"
        ).encode()
        previous = xref
    return bytes(out)


def xref_bomb(megabytes: int) -> bytes:
    """A PDF whose cross-reference stream inflates to ``megabytes`` of zeros (~1000:1)."""
    compressor = zlib.compressobj(1)
    chunk = b"\0" * (1 << 20)
    data = b"".join(compressor.compress(chunk) for _ in range(megabytes)) + compressor.flush()
    head = b"%PDF-1.7\n1 0 obj\n<</Type/Catalog/Pages 2 0 R>>\nendobj\n2 0 obj\n<</Type/Pages/Kids[]/Count 0>>\nendobj\n"
    offset = len(head)
    head += (
        b"3 0 obj\n<</Type/XRef/Size 4/W[1 4 2]/Root 1 0 R/Filter/FlateDecode/Length %d>>\nstream\n"
        % len(data)
    )
    return head + data + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % offset


def object_stream_bomb(*, streams: int, megabytes: int) -> bytes:
    """Catalog → AcroForm → one field per object stream; each object stream inflates to
    ``megabytes`` (random bytes first, to stay under pyHanko's 1:100 ratio limit)."""
    out = bytearray(b"%PDF-1.7\n")
    offsets: dict[int, int] = {}
    in_stream: dict[int, int] = {}
    fields = " ".join(f"{10 + i} 0 R" for i in range(streams))
    for number, body in (
        (1, f"<</Type/Catalog/Pages 2 0 R/AcroForm <</Fields [{fields}]>>>>"),
        (2, "<</Type/Pages/Kids[]/Count 0>>"),
    ):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    for index in range(streams):
        number, stream = 10 + index, 100 + index
        header = f"{number} 0 ".encode()
        compressor = zlib.compressobj(1)
        data = compressor.compress(header + f"<</FT/Sig/T (f{index})>>\n".encode())
        data += compressor.compress(os.urandom(megabytes * (1 << 20) // 90))
        data += b"".join(compressor.compress(b" " * (1 << 20)) for _ in range(megabytes)) + compressor.flush()
        offsets[stream] = len(out)
        out += f"{stream} 0 obj\n<</Type/ObjStm/N 1/First {len(header)}/Filter/FlateDecode/Length {len(data)}>>\nstream\n".encode()
        out += data + b"\nendstream\nendobj\n"
        in_stream[number] = stream
    size = 100 + streams + 1
    offsets[size - 1] = len(out)
    rows = bytearray()
    for number in range(size):
        if number in offsets:
            rows += b"\x01" + offsets[number].to_bytes(4, "big") + b"\0\0"
        elif number in in_stream:
            rows += b"\x02" + in_stream[number].to_bytes(4, "big") + b"\0\0"
        else:
            rows += b"\0\0\0\0\0\xff\xff"
    out += f"{size - 1} 0 obj\n<</Type/XRef/Size {size}/W[1 4 2]/Root 1 0 R/Length {len(rows)}>>\nstream\n".encode()
    out += rows + b"\nendstream\nendobj\n" + f"startxref\n{offsets[size - 1]}\n%%EOF\n".encode()
    return bytes(out)


def test_the_worker_gives_the_same_report(trust: Trust, pool: WorkerPool, signed: Path) -> None:
    now = datetime.now(UTC)
    config = trust_config(trust)
    direct = run(
        async_validate_document(
            signed, trust=config, revocation=provider(trust), document_name="a.pdf", now=now
        )
    )
    through = run(pool.async_validate(signed, revocation=provider(trust), document_name="a.pdf", now=now))
    assert through.indication is Indication.TOTAL_PASSED, through.to_json()
    assert through == direct
    assert pool.last_peak_kb is not None and pool.last_peak_kb > 0


def test_revocation_is_asked_from_the_parent(
    trust: Trust, pool: WorkerPool, tmp_path: Path, service_env: ServiceEnv
) -> None:
    """A B-B signature carries no revocation data: the child asks the parent, which asks
    our responder; without a provider our PKI's hard fail applies."""
    citizen = issue_citizen(service_env, Purpose.SIGNING)
    bb = sign(trust, citizen, make_pdf(tmp_path / "in.pdf"), tmp_path / "bb.pdf", Level.B_B)
    asked: list[int] = []
    inner = provider(trust)

    async def counting(certificates: tuple[bytes, ...]) -> object:
        asked.append(len(certificates))
        return await inner(certificates)

    report = run(pool.async_validate(bb, revocation=counting))
    assert report.indication is Indication.TOTAL_PASSED, report.to_json()
    assert asked and asked[0] >= 1
    signature = report.signatures[0]
    assert signature.revocation is not None and "asked in process" in signature.revocation.source
    assert run(pool.async_validate(bb)).indication is Indication.INDETERMINATE


@pytest.mark.parametrize(
    "content",
    [b"", b"not a pdf at all", b"%PDF-1.7\n1 0 obj\n<<"],
    ids=["empty", "garbage", "truncated-header"],
)
def test_unreadable_uploads_are_refused(pool: WorkerPool, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pdf"
    path.write_bytes(content)
    with pytest.raises(UnreadableDocument):
        run(pool.async_validate(path))


def test_truncated_and_encrypted_documents(pool: WorkerPool, signed: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(signed.read_bytes()[: signed.stat().st_size // 2])
    with pytest.raises(UnreadableDocument):
        run(pool.async_validate(truncated))
    encrypted = make_pdf(tmp_path / "encrypted.pdf", password="secret")
    with pytest.raises(UnreadableDocument, match="encrypted"):
        run(pool.async_validate(encrypted))


def test_a_cross_reference_bomb_is_refused_by_the_decode_limits(pool: WorkerPool, tmp_path: Path) -> None:
    bomb = tmp_path / "xref-bomb.pdf"
    bomb.write_bytes(xref_bomb(64))
    with pytest.raises(UnreadableDocument, match="exceeds the limit"):
        run(pool.async_validate(bomb))


def test_a_decompression_bomb_hits_the_memory_cap(
    trust: Trust, pool: WorkerPool, signed: Path, tmp_path: Path
) -> None:
    """Four object streams of 60 MB each, every one within pyHanko's per-stream limits,
    all needed to read the form fields: together past the worker's cap."""
    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(object_stream_bomb(streams=4, megabytes=60))
    assert bomb.stat().st_size < 8 * 1024 * 1024
    report = run(pool.async_validate(bomb, document_name="bomb.pdf"))
    assert report.indication is Indication.INDETERMINATE
    assert report.caught_by == ("resource_limits",)
    assert f"more than {MEMORY_MB} MB of memory" in report.errors[0]
    # The pool replaced the worker: the next document is validated normally.
    assert run(pool.async_validate(signed, revocation=provider(trust))).indication is Indication.TOTAL_PASSED


def test_a_slow_document_is_stopped_and_the_next_one_works(
    trust: Trust, pool: WorkerPool, signed: Path, tmp_path: Path
) -> None:
    slow = tmp_path / "slow.pdf"
    slow.write_bytes(many_revisions(signed.read_bytes(), 1000))
    before = pool.worker_pids()
    report = run(pool.async_validate(slow, document_name="slow.pdf"))
    assert report.indication is Indication.INDETERMINATE
    assert report.caught_by == ("resource_limits",)
    assert f"longer than {TIMEOUT_SECONDS:g} seconds" in report.errors[0]
    assert report.document_name == "slow.pdf"
    after = run(pool.async_validate(signed, revocation=provider(trust)))
    assert after.indication is Indication.TOTAL_PASSED
    assert pool.worker_pids() != before  # killed and replaced
